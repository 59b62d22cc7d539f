//! Redis URLs: the password masked for display, the key prefix taken from the query.

/// The key prefix when the URL names none.
pub const DEFAULT_PREFIX: &str = "massgen";

/// `url` with its password (if any) replaced by `***`.
pub fn mask(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let host_start = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..host_start].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let masked = match userinfo.find(':') {
        Some(colon) => format!("{}:***", &userinfo[..colon]),
        None => "***".to_owned(),
    };
    format!("{}{}{}", &url[..scheme_end + 3], masked, &rest[at..])
}

/// Splits `prefix=NAME` off the URL's query: `(url for the client, prefix)`.
pub fn split_prefix(url: &str) -> (String, String) {
    let Some(q) = url.find('?') else {
        return (url.to_owned(), DEFAULT_PREFIX.to_owned());
    };
    let (base, query) = (&url[..q], &url[q + 1..]);
    let mut prefix = DEFAULT_PREFIX.to_owned();
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("prefix=") {
            Some(p) if !p.is_empty() => prefix = p.to_owned(),
            Some(_) => {}
            None => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords_only() {
        assert_eq!(mask("redis://h:6379/0"), "redis://h:6379/0");
        assert_eq!(mask("redis://:s3cret@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(mask("rediss://u:p@w@h/1"), "rediss://u:***@h/1");
        assert_eq!(mask("redis://token@h"), "redis://***@h");
    }

    #[test]
    fn prefix_comes_from_the_query() {
        assert_eq!(
            split_prefix("redis://h/0?prefix=team"),
            ("redis://h/0".to_owned(), "team".to_owned())
        );
        assert_eq!(
            split_prefix("redis://h/0?protocol=resp3&prefix=t"),
            ("redis://h/0?protocol=resp3".to_owned(), "t".to_owned())
        );
        assert_eq!(
            split_prefix("redis://h/0"),
            ("redis://h/0".to_owned(), DEFAULT_PREFIX.to_owned())
        );
    }
}
