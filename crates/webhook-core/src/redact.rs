//! What of a configured URL may be written to a log: scheme, host, port and path; never the
//! user-info or the query, where passwords and tokens go (`wss://host/feed?token=…`).

/// `url` as `scheme://host[:port]/path`, without user-info, query or fragment; `<invalid
/// URL>` when it does not parse.
pub fn url_for_logs(url: &str) -> String {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return "<invalid URL>".to_owned();
    };
    let scheme = uri.scheme_str().unwrap_or("");
    let host = uri.host().unwrap_or("");
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{scheme}://{host}{port}{}", uri.path())
}

#[cfg(test)]
mod tests {
    use super::url_for_logs;

    #[test]
    fn secrets_in_urls_stay_out_of_logs() {
        assert_eq!(
            url_for_logs("ws://127.0.0.1:1/feed?token=wss3cret"),
            "ws://127.0.0.1:1/feed"
        );
        assert_eq!(
            url_for_logs("https://user:pa55@example.com/x#frag"),
            "https://example.com/x"
        );
        assert_eq!(url_for_logs("not a url"), "<invalid URL>");
    }
}
