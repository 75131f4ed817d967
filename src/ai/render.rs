//! Model output is untrusted text: it is rendered from Markdown to HTML here and sanitised with
//! an allowlist (ammonia) before any page shows it. Scripts, event-handler attributes,
//! `javascript:` links, styles and images (which could leak the viewer to a third party) never
//! survive.

use pulldown_cmark::{Options, Parser, html};

/// Safe HTML for untrusted Markdown.
pub fn markdown_to_safe_html(markdown: &str) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let mut raw = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut raw, Parser::new_ext(markdown, options));
    ammonia::Builder::default()
        .rm_tags(&["img"])
        .url_schemes(["http", "https", "mailto"].into())
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&raw)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders_and_injected_html_does_not_survive() {
        let md = "## Summary\n\nTraffic **up** 20%.\n\n<script>window.__pwned=1</script>\n\n<img src=x onerror=\"window.__pwned=2\">\n\n[x](javascript:alert(1)) <a href=\"https://e.example\" onclick=\"bad()\">ok</a>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";
        let html = markdown_to_safe_html(md);
        assert!(html.contains("<h2>Summary</h2>"), "{html}");
        assert!(html.contains("<strong>up</strong>"));
        assert!(html.contains("<table>"));
        for bad in [
            "<script",
            "__pwned",
            "onerror",
            "onclick",
            "javascript:",
            "<img",
        ] {
            assert!(!html.contains(bad), "{bad} in {html}");
        }
        assert!(html.contains("href=\"https://e.example\""));
    }
}
