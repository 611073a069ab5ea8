//! The timeline page: the finished trace's events, embedded as a JSON
//! literal in one HTML file with a small hand-written renderer
//! (`timeline.html`). No network, no external script or style: the file
//! opens offline in any browser.

use std::io;
use std::path::Path;

/// The page, with `/*EVLOOP_EVENTS*/[]` where the events go.
const TEMPLATE: &str = include_str!("timeline.html");
const SLOT: &str = "/*EVLOOP_EVENTS*/[]";

/// Whether `path` asks for the page rather than the JSON file.
pub(super) fn is_page_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"))
}

/// Replaces the finished JSON array at `path` with the page holding it.
pub(super) fn rewrite_as_page(path: &Path) -> io::Result<()> {
    let json = std::fs::read_to_string(path)?;
    std::fs::write(path, page(&json))?;
    log::debug!("timeline page written to {}", path.display());
    Ok(())
}

/// The page for a JSON array of trace events.
pub(super) fn page(json: &str) -> String {
    let (head, tail) = TEMPLATE
        .split_once(SLOT)
        .expect("the template has the events slot");
    let mut out = String::with_capacity(TEMPLATE.len() + json.len() + json.len() / 16);
    out.push_str(head);
    out.push_str(&script_safe(json));
    out.push_str(tail);
    out
}

/// JSON made safe inside `<script>`: every `<` (only ever inside a
/// string, in JSON) becomes `\u003c`, so no `</script>` or `<!--` in a
/// callback's name can end the script early; U+2028 and U+2029 are escaped
/// too, for older JavaScript parsers.
fn script_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_paths() {
        assert!(is_page_path(Path::new("trace.html")));
        assert!(is_page_path(Path::new("/tmp/x/T.HTM")));
        assert!(!is_page_path(Path::new("trace.json")));
        assert!(!is_page_path(Path::new("html")));
    }

    #[test]
    fn events_cannot_end_the_script() {
        let p = page(r#"[{"name":"</script><script>alert(1)</script><!--"}]"#);
        let body = p.split_once("<script>").unwrap().1;
        // The only closing tag is the template's own.
        assert_eq!(body.matches("</script>").count(), 1);
        assert!(!body.contains("<!--"));
        assert!(p.contains(r#"\u003c/script>"#));
        assert!(!p.contains(SLOT));
    }
}
