//! Storage URLs: one string picks a backend (`sqlite://media.db`, `postgres://...`,
//! `mysql://...`, `file://DIR`, `memory:`).

use storage_core::{Error, Result};

/// A parsed database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DatabaseUrl {
    /// A SQLite file path.
    Sqlite(String),
    /// A libpq connection URL.
    Postgres(url::Url),
    /// A MySQL/MariaDB connection URL.
    Mysql(url::Url),
}

impl DatabaseUrl {
    pub(crate) fn parse(raw: &str) -> Result<Self> {
        let invalid = |reason: &str| {
            Error::Backend {
            backend: "database",
            message: format!("invalid database URL ({reason}); expected sqlite://PATH, postgres://... or mysql://..."),
            source: None,
        }
        };
        if let Some(path) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(invalid("no SQLite path"));
            }
            return Ok(Self::Sqlite(path.to_owned()));
        }
        // The URL parser's errors never echo the input, so a password cannot leak from here.
        let url = url::Url::parse(raw).map_err(|_| invalid("not a URL"))?;
        match url.scheme() {
            "postgres" | "postgresql" => Ok(Self::Postgres(url)),
            "mysql" | "mariadb" => Ok(Self::Mysql(url)),
            _ => Err(invalid("unknown scheme")),
        }
    }

    /// What the driver is given.
    pub(crate) fn connection_string(&self) -> String {
        match self {
            Self::Sqlite(path) => path.clone(),
            Self::Postgres(url) => url.to_string(),
            Self::Mysql(url) => {
                let mut url = url.clone();
                if url.scheme() == "mariadb" {
                    let rest = url.as_str().trim_start_matches("mariadb:").to_owned();
                    url = url::Url::parse(&format!("mysql:{rest}")).unwrap_or(url);
                }
                url.to_string()
            }
        }
    }

    /// How the database is named in messages: never the user or the password.
    pub(crate) fn label(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite database '{path}'"),
            Self::Postgres(url) => network_label("postgres", url, 5432),
            Self::Mysql(url) => network_label("mysql", url, 3306),
        }
    }
}

fn network_label(kind: &str, url: &url::Url, default_port: u16) -> String {
    let database = url.path().trim_start_matches('/');
    let host = url.host_str().unwrap_or("localhost");
    let port = url.port().unwrap_or(default_port);
    format!("{kind} database '{database}' at {host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_never_show_credentials() -> Result<()> {
        let pg =
            DatabaseUrl::parse("postgres://app:s3cret@db.internal:6543/files?sslmode=require")?;
        assert_eq!(pg.label(), "postgres database 'files' at db.internal:6543");
        let my = DatabaseUrl::parse("mysql://root:hunter2@127.0.0.1/test")?;
        assert_eq!(my.label(), "mysql database 'test' at 127.0.0.1:3306");
        assert!(!format!("{pg:?}{my:?}").is_empty());
        let maria = DatabaseUrl::parse("mariadb://root@127.0.0.1:3306/test")?;
        assert_eq!(
            maria.connection_string(),
            "mysql://root@127.0.0.1:3306/test"
        );
        Ok(())
    }

    #[test]
    fn sqlite_paths_and_bad_urls() -> Result<()> {
        assert_eq!(
            DatabaseUrl::parse("sqlite://media.db")?,
            DatabaseUrl::Sqlite("media.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/app/media.db")?,
            DatabaseUrl::Sqlite("/var/app/media.db".into())
        );
        for bad in ["sqlite://", "ftp://x/y", "not a url", "postgres//nope:pw@x"] {
            let err = DatabaseUrl::parse(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("invalid database URL"), "{bad}: {err}");
            assert!(!err.contains("pw"), "{err}");
        }
        Ok(())
    }
}
