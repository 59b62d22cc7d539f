//! Images on the wire: each adapter sends a message's images in its provider's documented form
//! and the mock, reading that form, records them and charges each a fixed figure; bodies
//! written by hand after each provider's documented examples (an independent reference for
//! both sides) are read the same way, and malformed images are refused as the APIs do.

use massgen::config::BackendKind;
use massgen::mock_provider::images::image_tokens;
use massgen::mock_provider::{MockDialect, MockLimits};
use massgen::provider::{ChatRequest, ImageInput, Message};
use massgen::routing::estimate::{IMAGE_TOKENS, TokenCounter, estimate_input};
use serde_json::{Value, json};

use super::{FIRST, KINDS, key, mock, provider, request};

/// A 1 x 1 PNG, base64.
const PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

fn dialect(kind: BackendKind) -> MockDialect {
    match kind {
        BackendKind::Gemini => MockDialect::Gemini,
        BackendKind::Claude => MockDialect::Anthropic,
        _ => MockDialect::OpenAi,
    }
}

fn with_two_images() -> ChatRequest {
    let mut r = request(FIRST, false, false);
    r.messages = vec![
        Message::system("You are agent one."),
        Message::user_with_images(
            FIRST,
            vec![
                ImageInput::inline("image/png", PNG),
                ImageInput::url("https://example.com/photo.jpg"),
            ],
        ),
    ];
    r
}

#[tokio::test]
async fn every_adapter_sends_images_the_mock_reads_and_charges_within_the_estimate() {
    for kind in KINDS {
        let server = mock(MockLimits::unlimited(), "").await;
        let p = provider(kind, &server);
        let text = request(FIRST, false, false);
        let images = with_two_images();
        p.chat(&text, Some(&key("v")), None).await.unwrap();
        p.chat(&images, Some(&key("v")), None).await.unwrap();
        let log = server.admissions();
        assert_eq!(log.len(), 2, "{kind:?}");
        assert_eq!((log[0].images, log[1].images), (0, 2), "{kind:?}");
        // Same text, two images more: exactly two image charges more (the images' data is
        // never counted as text).
        let (plain, seen) = (
            log[0].charged_at_arrival.input_tokens,
            log[1].charged_at_arrival.input_tokens,
        );
        assert_eq!(seen - plain, 2 * image_tokens(dialect(kind)), "{kind:?}");
        // The router's reservation for the image request stays an upper bound.
        let counter = TokenCounter::for_model(p.name(), &images.model);
        let estimate = estimate_input(&images, counter);
        assert!(estimate >= seen, "{kind:?}: estimated {estimate} < {seen}");
        assert!(image_tokens(dialect(kind)) <= IMAGE_TOKENS);
    }
}

async fn post(url: String, headers: &[(&str, &str)], body: &Value) -> (u16, String) {
    let mut r = reqwest::Client::new().post(url).json(body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn documented_image_bodies_are_read_and_malformed_images_refused() {
    let server = mock(MockLimits::unlimited(), "").await;
    let openai = format!("{}/chat/completions", server.v1_url());
    let claude = format!("{}/messages", server.v1_url());
    let gemini = format!(
        "{}/models/gemini-2.5-flash:generateContent",
        server.gemini_url()
    );
    let bearer = [("authorization", "Bearer k-0123456789")];
    let xkey = [
        ("x-api-key", "k-0123456789"),
        ("anthropic-version", "2023-06-01"),
    ];
    let gkey = [("x-goog-api-key", "k-0123456789")];
    // As the providers' vision guides show them.
    let cases = [
        (
            openai.clone(),
            &bearer[..],
            json!({"model": "gpt-4o", "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}"),
                                                    "detail": "low"}}]}]}),
        ),
        (
            claude.clone(),
            &xkey[..],
            json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
            "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
                {"type": "text", "text": "Describe these."}]}]}),
        ),
        (
            gemini.clone(),
            &gkey[..],
            json!({"contents": [{"parts": [
                {"inline_data": {"mime_type": "image/png", "data": PNG}},
                {"file_data": {"mime_type": "image/jpeg", "file_uri": "https://example.com/a.jpg"}},
                {"text": "Caption these."}]}]}),
        ),
    ];
    for (url, headers, body) in &cases {
        let (status, text) = post(url.clone(), headers, body).await;
        assert_eq!(status, 200, "{url}: {text}");
    }
    let log = server.admissions();
    assert_eq!(log.iter().map(|a| a.images).collect::<Vec<_>>(), [2, 2, 2]);
    let refused = [
        // A data URL that is not base64.
        (
            openai.clone(),
            &bearer[..],
            json!({"model": "gpt-4o", "messages": [
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]}]}),
        ),
        // OpenAI takes images in user messages only.
        (
            openai,
            &bearer[..],
            json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}]}]}),
        ),
        // Base64 data without its media type.
        (
            claude,
            &xkey[..],
            json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
            "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "data": PNG}}]}]}),
        ),
        (
            gemini,
            &gkey[..],
            json!({"contents": [{"parts": [
                {"inlineData": {"data": PNG}}]}]}),
        ),
    ];
    for (url, headers, body) in &refused {
        let (status, text) = post(url.clone(), headers, body).await;
        assert_eq!(status, 400, "{url}: {text}");
    }
    assert_eq!(
        server.admissions().len(),
        3,
        "refused bodies are not admitted"
    );
}
