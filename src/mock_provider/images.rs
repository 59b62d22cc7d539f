//! Images in each dialect's requests, read from its documented form, and what the mock charges
//! for them.
//!
//! - OpenAI-compatible: a user message's `content` array holds `{type: "image_url", image_url:
//!   {url}}` parts, `url` either a web address or `data:<media type>;base64,<data>`.
//! - Gemini: parts `inlineData {mimeType, data}` and `fileData {fileUri, mimeType}` (the REST
//!   API takes the proto names `inline_data`, `mime_type`, `file_data`, `file_uri` too, and so
//!   does the mock).
//! - Anthropic: blocks `{type: "image", source: {type: "base64", media_type, data}}` or
//!   `{type: "image", source: {type: "url", url}}`.
//!
//! A malformed image (no URL, a `data:` URL that is not base64, inline data without a media
//! type) is refused with a 400, as the providers do. Pixels are never decoded: each image is
//! charged a fixed number of input tokens per dialect ([`image_tokens`]).

use serde_json::Value;

use super::convo::MockDialect;

/// One image a request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockImage {
    /// Inline data (`true`) or a URL (`false`).
    pub inline: bool,
    /// The media type sent (empty when the request named none, as a bare URL may).
    pub media_type: String,
    /// The URL, or for inline data its length in base64 characters as `<n> base64 chars`.
    pub source: String,
}

/// The input tokens the mock charges per image, each a figure the provider publishes for a
/// typical image: OpenAI 765 (a 1024 x 1024 image at high detail: 85 plus 170 per 512 px
/// tile), Gemini 258 (an image up to 384 px a side), Anthropic 1,590 (a 1092 x 1092 image:
/// width x height / 750). All are at most the router's per-image estimate, so its
/// reservations stay upper bounds of what the mock charges.
pub fn image_tokens(dialect: MockDialect) -> u64 {
    match dialect {
        MockDialect::OpenAi => 765,
        MockDialect::Gemini => 258,
        MockDialect::Anthropic => 1_590,
    }
}

fn inline(media_type: &str, data: &str) -> Result<MockImage, String> {
    if media_type.is_empty() || data.is_empty() {
        return Err("image data needs a media type and base64 data".to_owned());
    }
    if !data
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'))
    {
        return Err("image data is not valid base64".to_owned());
    }
    Ok(MockImage {
        inline: true,
        media_type: media_type.to_owned(),
        source: format!("{} base64 chars", data.len()),
    })
}

fn web(url: &str, media_type: &str) -> Result<MockImage, String> {
    if !(url.starts_with("https://") || url.starts_with("http://") || url.starts_with("gs://")) {
        return Err(format!("invalid image URL `{url}`"));
    }
    Ok(MockImage {
        inline: false,
        media_type: media_type.to_owned(),
        source: url.to_owned(),
    })
}

/// An OpenAI content part, if it is an image (`Err` when it is a malformed one).
pub fn openai(part: &Value) -> Result<Option<MockImage>, String> {
    if part["type"].as_str() != Some("image_url") {
        return Ok(None);
    }
    let url = part["image_url"]["url"]
        .as_str()
        .ok_or("an image_url part needs image_url.url")?;
    if let Some(rest) = url.strip_prefix("data:") {
        let (head, data) = rest
            .split_once(',')
            .ok_or("invalid image data URL: no data")?;
        let media = head
            .strip_suffix(";base64")
            .ok_or("invalid image data URL: only base64 data is taken")?;
        return inline(media, data).map(Some);
    }
    web(url, "").map(Some)
}

fn field<'a>(v: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    v.get(camel).or_else(|| v.get(snake))
}

fn text<'a>(v: &'a Value, camel: &str, snake: &str) -> &'a str {
    field(v, camel, snake)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A Gemini part, if it is an image (`Err` when it is a malformed one).
pub fn gemini(part: &Value) -> Result<Option<MockImage>, String> {
    if let Some(d) = field(part, "inlineData", "inline_data") {
        let data = d.get("data").and_then(Value::as_str).unwrap_or_default();
        return inline(text(d, "mimeType", "mime_type"), data).map(Some);
    }
    if let Some(f) = field(part, "fileData", "file_data") {
        return web(
            text(f, "fileUri", "file_uri"),
            text(f, "mimeType", "mime_type"),
        )
        .map(Some);
    }
    Ok(None)
}

/// An Anthropic content block, if it is an image (`Err` when it is a malformed one).
pub fn anthropic(block: &Value) -> Result<Option<MockImage>, String> {
    if block["type"].as_str() != Some("image") {
        return Ok(None);
    }
    let s = &block["source"];
    match s["type"].as_str().unwrap_or_default() {
        "base64" => inline(
            s["media_type"].as_str().unwrap_or_default(),
            s["data"].as_str().unwrap_or_default(),
        )
        .map(Some),
        "url" => web(s["url"].as_str().unwrap_or_default(), "").map(Some),
        other => Err(format!("unknown image source type `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn each_dialect_reads_its_own_image_forms_and_refuses_malformed_ones() {
        let png = json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}});
        let img = openai(&png).unwrap().unwrap();
        assert!(img.inline);
        assert_eq!(img.media_type, "image/png");
        assert!(
            openai(&json!({"type": "image_url", "image_url": {"url": "data:image/png,x"}}))
                .is_err()
        );
        assert!(
            openai(&json!({"type": "text", "text": "hi"}))
                .unwrap()
                .is_none()
        );
        let g = gemini(&json!({"inline_data": {"mime_type": "image/jpeg", "data": "/9j/"}}));
        assert_eq!(g.unwrap().unwrap().media_type, "image/jpeg");
        let g = gemini(&json!({"fileData": {"fileUri": "https://e.x/a.png"}})).unwrap();
        assert_eq!(g.unwrap().source, "https://e.x/a.png");
        assert!(gemini(&json!({"inlineData": {"data": "abc"}})).is_err());
        let a = json!({"type": "image", "source": {"type": "url", "url": "https://e.x/b.gif"}});
        assert!(!anthropic(&a).unwrap().unwrap().inline);
        let bad = json!({"type": "image", "source": {"type": "base64", "data": "a b"}});
        assert!(anthropic(&bad).is_err());
    }
}
