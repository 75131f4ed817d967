//! User-Agent parsing for server-side clients that do not send browser/os/device themselves,
//! and known-bot detection. Uses woothee's built-in dataset (no files, no downloads).

use super::model::DeviceType;

/// What a User-Agent string tells us.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserAgentInfo {
    pub browser: Option<String>,
    pub browser_version: Option<String>,
    pub os: Option<String>,
    pub os_version: Option<String>,
    pub device_type: Option<DeviceType>,
    pub is_bot: bool,
}

/// Substrings that mark crawlers and headless browsers woothee does not classify as crawlers.
/// Plain HTTP libraries (curl, python-requests, …) are not bots: server-side clients use them.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "headlesschrome",
    "phantomjs",
    "lighthouse",
    "facebookexternalhit",
    "embedly",
    "pingdom",
    "uptimerobot",
];

/// Parses a User-Agent header value.
pub fn parse(ua: &str) -> UserAgentInfo {
    let lower = ua.to_ascii_lowercase();
    let marker = BOT_MARKERS.iter().any(|m| lower.contains(m));
    let Some(r) = woothee::parser::Parser::new().parse(ua) else {
        return UserAgentInfo {
            is_bot: marker,
            ..Default::default()
        };
    };
    let known =
        |s: &str| (!s.is_empty() && s != woothee::woothee::VALUE_UNKNOWN).then(|| s.to_string());
    let device_type = match r.category {
        "smartphone" | "mobilephone" => Some(DeviceType::Mobile),
        "pc" => Some(DeviceType::Desktop),
        _ => None,
    };
    let device_type =
        if lower.contains("ipad") || (lower.contains("android") && !lower.contains("mobile")) {
            Some(DeviceType::Tablet)
        } else {
            device_type
        };
    UserAgentInfo {
        browser: known(r.name).map(|b| browser_family(&b)),
        browser_version: known(r.version),
        os: known(r.os).map(|o| os_family(&o)),
        os_version: known(&r.os_version),
        device_type,
        is_bot: marker || r.category == "crawler",
    }
}

/// The browser names the SuperInsights SDK reports (`IE` rather than woothee's long name).
fn browser_family(name: &str) -> String {
    match name {
        "Internet Explorer" => "IE".into(),
        other => other.to_string(),
    }
}

/// The OS families the SuperInsights SDK reports: Windows, Android, iOS, macOS, Linux.
fn os_family(name: &str) -> String {
    match name {
        n if n.starts_with("Windows") => "Windows".into(),
        "iPhone" | "iPad" | "iPod" | "iOS" => "iOS".into(),
        "Mac OSX" | "Mac OS X" | "Mac" => "macOS".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desktop_chrome() {
        let i = parse(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        );
        assert_eq!(i.browser.as_deref(), Some("Chrome"));
        assert_eq!(i.os.as_deref(), Some("Linux"));
        assert_eq!(i.device_type, Some(DeviceType::Desktop));
        assert!(!i.is_bot);
    }

    #[test]
    fn iphone_is_mobile_and_ipad_is_tablet() {
        let phone = parse(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
        );
        assert_eq!(phone.device_type, Some(DeviceType::Mobile));
        assert_eq!(phone.os.as_deref(), Some("iOS"));
        assert_eq!(phone.browser.as_deref(), Some("Safari"));
        let pad = parse(
            "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
        );
        assert_eq!(pad.device_type, Some(DeviceType::Tablet));
    }

    #[test]
    fn names_match_what_the_sdk_reports() {
        let win = parse(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        );
        assert_eq!(
            (win.browser.as_deref(), win.os.as_deref()),
            (Some("Chrome"), Some("Windows"))
        );
        let mac = parse(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
        );
        assert_eq!(
            (mac.browser.as_deref(), mac.os.as_deref()),
            (Some("Safari"), Some("macOS"))
        );
    }

    #[test]
    fn crawlers_and_tools_are_bots() {
        assert!(
            parse("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
                .is_bot
        );
        assert!(
            parse("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0.0.0 Safari/537.36").is_bot
        );
        assert!(!parse("curl/8.5.0").is_bot);
        assert!(!parse("").is_bot);
    }
}
