# Sourced by the bench scripts. measure COMMAND...: runs it under /usr/bin/time -v with stdout
# in $WORK/out.txt and prints "seconds max_rss_kib" (wall clock, peak resident set size).
measure() {
  local log="$WORK/time.log" wall rss
  /usr/bin/time -v -o "$log" "$@" > "$WORK/out.txt"
  wall=$(grep 'Elapsed (wall clock)' "$log" | awk '{print $NF}')
  rss=$(grep 'Maximum resident set size' "$log" | awk '{print $NF}')
  # h:mm:ss or m:ss.ss to seconds
  echo "$(echo "$wall" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }') $rss"
}
