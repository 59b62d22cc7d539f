//! Images a message carries ([`ImageInput`]): a URL the provider fetches, or inline
//! base64-encoded data with its media type. Each adapter sends them in its provider's native
//! form (OpenAI-compatible `image_url` content parts, Gemini `inlineData` / `fileData` parts,
//! Anthropic `image` blocks); a request carrying any needs a vision-capable model
//! ([`crate::routing::pooled::Needs`]).

use std::borrow::Cow;

use super::{Message, Role};

/// One image in a message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageInput {
    /// An image on the web (`https://...`), fetched by the provider.
    Url {
        /// Where the image is.
        url: String,
        /// Its media type (`image/png`), when known; Gemini's `fileData` sends it, guessed
        /// from the URL's extension when not given ([`ImageInput::media_type`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media_type: Option<String>,
    },
    /// The image itself, base64-encoded.
    Inline {
        /// Its media type: `image/jpeg`, `image/png`, `image/gif` or `image/webp`.
        media_type: String,
        /// The base64 text of its bytes (no `data:` prefix).
        data: String,
    },
}

impl ImageInput {
    /// An image at `url`.
    pub fn url(url: impl Into<String>) -> Self {
        Self::Url {
            url: url.into(),
            media_type: None,
        }
    }

    /// An image given inline: `data` is the base64 text of its bytes, `media_type` e.g.
    /// `image/png`.
    pub fn inline(media_type: impl Into<String>, data: impl Into<String>) -> Self {
        Self::Inline {
            media_type: media_type.into(),
            data: data.into(),
        }
    }

    /// The image an OpenAI-style `image_url.url` names: a `data:<media type>;base64,<data>` URL
    /// becomes [`ImageInput::Inline`], anything else [`ImageInput::Url`]. `None` for a `data:`
    /// URL that is not base64 or names no media type.
    pub fn from_url_or_data(url: &str) -> Option<Self> {
        let Some(rest) = url.strip_prefix("data:") else {
            return Some(Self::url(url));
        };
        let (head, data) = rest.split_once(',')?;
        let media_type = head.strip_suffix(";base64")?;
        if media_type.is_empty() || media_type.contains(';') {
            return None;
        }
        Some(Self::inline(media_type, data))
    }

    /// The image as one URL: its own, or a `data:<media type>;base64,<data>` URL for inline
    /// data (how OpenAI-compatible servers take inline images).
    pub fn as_url(&self) -> Cow<'_, str> {
        match self {
            Self::Url { url, .. } => Cow::Borrowed(url),
            Self::Inline { media_type, data } => {
                Cow::Owned(format!("data:{media_type};base64,{data}"))
            }
        }
    }

    /// Its media type: the one given, else for a URL the one its extension names (`.png`,
    /// `.jpg`/`.jpeg`, `.gif`, `.webp`, ignoring a query or fragment), else `None`.
    pub fn media_type(&self) -> Option<&str> {
        match self {
            Self::Inline { media_type, .. } => Some(media_type),
            Self::Url {
                media_type: Some(m),
                ..
            } => Some(m),
            Self::Url { url, .. } => {
                let path = url.split(['?', '#']).next().unwrap_or_default();
                let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
                match ext.as_str() {
                    "png" => Some("image/png"),
                    "jpg" | "jpeg" => Some("image/jpeg"),
                    "gif" => Some("image/gif"),
                    "webp" => Some("image/webp"),
                    _ => None,
                }
            }
        }
    }
}

/// The messages as sent: images only travel in user turns (OpenAI takes them in user messages
/// only, Anthropic never in assistant turns), so the images of a system, assistant or tool
/// message are moved into a user message of their own right after it (its text stays where it
/// was). Borrowed, with nothing copied, when no such message carries images.
pub(crate) fn images_on_user_side(messages: &[Message]) -> Cow<'_, [Message]> {
    let misplaced = |m: &Message| m.role != Role::User && !m.images.is_empty();
    if !messages.iter().any(misplaced) {
        return Cow::Borrowed(messages);
    }
    let mut out = Vec::with_capacity(messages.len() + 1);
    for m in messages {
        if misplaced(m) {
            out.push(Message {
                images: Vec::new(),
                ..m.clone()
            });
            out.push(Message::user_with_images("", m.images.clone()));
        } else {
            out.push(m.clone());
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn data_urls_become_inline_images_and_back() {
        let img = ImageInput::from_url_or_data("data:image/png;base64,iVBORw0K").unwrap();
        assert_eq!(img, ImageInput::inline("image/png", "iVBORw0K"));
        assert_eq!(img.as_url(), "data:image/png;base64,iVBORw0K");
        let web = ImageInput::from_url_or_data("https://example.com/a.JPG?x=1").unwrap();
        assert_eq!(web, ImageInput::url("https://example.com/a.JPG?x=1"));
        assert_eq!(web.media_type(), Some("image/jpeg"));
        assert_eq!(ImageInput::url("https://example.com/a").media_type(), None);
        // Not base64, or no media type: not an image we can send.
        assert_eq!(ImageInput::from_url_or_data("data:image/png,abc"), None);
        assert_eq!(ImageInput::from_url_or_data("data:;base64,abc"), None);
        assert_eq!(ImageInput::from_url_or_data("data:image/png;base64"), None);
    }

    #[test]
    fn images_serialize_tagged_and_text_messages_stay_as_they_were() {
        let m = Message::user_with_images("look", vec![ImageInput::url("https://e.x/i.png")]);
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v["images"],
            serde_json::json!([{"kind": "url", "url": "https://e.x/i.png"}])
        );
        assert_eq!(serde_json::from_value::<Message>(v).unwrap(), m);
        let text = serde_json::to_value(Message::user("hi")).unwrap();
        assert_eq!(text, serde_json::json!({"role": "user", "content": "hi"}));
    }

    #[test]
    fn images_of_other_roles_move_to_a_user_message_after_them() {
        let img = ImageInput::inline("image/gif", "R0lG");
        let plain = vec![Message::user("a"), Message::assistant("b")];
        assert!(matches!(images_on_user_side(&plain), Cow::Borrowed(_)));
        let mut sys = Message::system("s");
        sys.images = vec![img.clone()];
        let moved = images_on_user_side(std::slice::from_ref(&sys));
        assert_eq!(
            moved.as_ref(),
            [
                Message::system("s"),
                Message::user_with_images("", vec![img])
            ]
        );
    }
}
