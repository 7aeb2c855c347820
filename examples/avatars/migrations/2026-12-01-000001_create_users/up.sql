-- The app's own table: the avatar column holds a stored name ('' when none), as a Django
-- ImageField does.
CREATE TABLE users (
    id INTEGER PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    avatar TEXT NOT NULL DEFAULT ''
);
