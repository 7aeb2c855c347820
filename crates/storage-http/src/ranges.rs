//! The `Range` header resolved against a file's size (RFC 9110 section 14): parsed by the
//! `http-range-header` crate, then resolved, with unsatisfiable specs dropped, and overlapping or
//! adjacent ranges coalesced.

use std::ops::Range;

use http_range_header::{EndPosition, StartPosition};

/// What a `Range` header asks of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable `Range` header (absent, not `bytes=`, malformed, too many ranges): the whole file.
    Whole,
    /// Satisfiable ranges, sorted and coalesced, end exclusive.
    Ranges(Vec<Range<u64>>),
    /// Syntactically fine, but no range overlaps the file: 416.
    Unsatisfiable,
}

/// Resolves a `Range` header value for a file of `size` bytes. More than `max_ranges` specs make
/// the header ignored (a defence against requests for thousands of tiny ranges).
pub fn resolve_range(header: &str, size: u64, max_ranges: usize) -> RangeRequest {
    let Ok(parsed) = http_range_header::parse_range_header(header) else {
        return RangeRequest::Whole;
    };
    if parsed.ranges.len() > max_ranges {
        return RangeRequest::Whole;
    }
    let mut ranges = Vec::with_capacity(parsed.ranges.len());
    for spec in &parsed.ranges {
        let resolved = match (spec.start, spec.end) {
            (StartPosition::Index(start), EndPosition::Index(last)) => {
                if last < start {
                    return RangeRequest::Whole; // invalid spec: ignore the header
                }
                (start < size).then(|| start..last.saturating_add(1).min(size))
            }
            (StartPosition::Index(start), EndPosition::LastByte) => {
                (start < size).then_some(start..size)
            }
            (StartPosition::FromLast(n), _) => {
                (size > 0 && n > 0).then(|| size.saturating_sub(n)..size)
            }
        };
        ranges.extend(resolved);
    }
    if ranges.is_empty() {
        return RangeRequest::Unsatisfiable;
    }
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    RangeRequest::Ranges(merged)
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one-range vectors are the expected answers
mod tests {
    use super::*;

    fn ranges(header: &str, size: u64) -> RangeRequest {
        resolve_range(header, size, 16)
    }

    #[test]
    fn single_suffix_and_open_ranges() {
        assert_eq!(ranges("bytes=0-0", 10), RangeRequest::Ranges(vec![0..1]));
        assert_eq!(ranges("bytes=9-9", 10), RangeRequest::Ranges(vec![9..10]));
        assert_eq!(ranges("bytes=5-", 10), RangeRequest::Ranges(vec![5..10]));
        assert_eq!(ranges("bytes=-3", 10), RangeRequest::Ranges(vec![7..10]));
        assert_eq!(ranges("bytes=-30", 10), RangeRequest::Ranges(vec![0..10]));
        assert_eq!(ranges("bytes=2-100", 10), RangeRequest::Ranges(vec![2..10]));
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(ranges("bytes=10-", 10), RangeRequest::Unsatisfiable);
        assert_eq!(ranges("bytes=10-20", 10), RangeRequest::Unsatisfiable);
        assert_eq!(ranges("bytes=-5", 0), RangeRequest::Unsatisfiable);
        assert_eq!(ranges("bytes=0-", 0), RangeRequest::Unsatisfiable);
        // Some satisfiable: the others are dropped.
        assert_eq!(
            ranges("bytes=50-60,0-1", 10),
            RangeRequest::Ranges(vec![0..2])
        );
        for ignored in ["items=0-1", "bytes=5-1", "bytes=a-b", "bytes=", "bytes=--1"] {
            assert_eq!(ranges(ignored, 10), RangeRequest::Whole, "{ignored}");
        }
        let many = format!(
            "bytes={}",
            (0..17)
                .map(|i| format!("{}-{}", i * 2, i * 2))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(ranges(&many, 100), RangeRequest::Whole);
    }

    #[test]
    fn overlapping_and_adjacent_ranges_coalesce() {
        assert_eq!(
            ranges("bytes=0-4,5-9", 20),
            RangeRequest::Ranges(vec![0..10])
        );
        assert_eq!(
            ranges("bytes=0-5,3-8,15-16", 20),
            RangeRequest::Ranges(vec![0..9, 15..17])
        );
        assert_eq!(
            ranges("bytes=15-16,0-1", 20),
            RangeRequest::Ranges(vec![0..2, 15..17])
        );
        assert_eq!(
            ranges("bytes=-5,0-1", 20),
            RangeRequest::Ranges(vec![0..2, 15..20])
        );
    }
}
