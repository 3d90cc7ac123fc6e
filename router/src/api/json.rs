//! The JSON body extractor of the OpenAI routes: rejections come back in OpenAI's error shape,
//! with the path of the offending field in `param`.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, Request};
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Like `axum::Json`, but any content type is accepted and every failure is an [`ApiError`].
#[derive(Debug)]
pub struct OpenAiJson<T>(pub T);

/// Body limit in force, for the 413 message.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

impl<S, T> FromRequest<S> for OpenAiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map(|l| l.0)
            .unwrap_or(0);
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            let too_large = matches!(
                &r,
                BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))
            );
            if too_large {
                ApiError::payload_too_large(limit)
            } else {
                ApiError::bad_json(format!("Could not read the request body: {r}"), None)
            }
        })?;
        parse(&bytes).map(OpenAiJson)
    }
}

/// A JSON response body, serialized in one pass into a buffer sized for a typical answer.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: Serialize> IntoResponse for JsonBody<T> {
    fn into_response(self) -> Response {
        let mut buf = Vec::with_capacity(512);
        match serde_json::to_writer(&mut buf, &self.0) {
            Ok(()) => (
                [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                buf,
            )
                .into_response(),
            Err(e) => {
                ApiError::internal(format!("cannot encode the response: {e}")).into_response()
            }
        }
    }
}

/// Parses `bytes`, naming the field at fault.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_json(
            "The request body is empty; expected a JSON object.",
            None,
        ));
    }
    // The common case parses once; a body that fails is parsed again to name the field.
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let param = if inner.is_syntax() || inner.is_eof() {
            None
        } else {
            match path.as_str() {
                "." | "" | "?" => missing_field(&inner.to_string()),
                p => Some(p.to_string()),
            }
        };
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("The request body is not valid JSON: {inner}")
        } else {
            let detail = untagged_forms(&inner.to_string()).unwrap_or_else(|| inner.to_string());
            match &param {
                Some(p) => format!("Invalid value for '{p}': {detail}"),
                None => format!("Invalid request body: {detail}"),
            }
        };
        ApiError::bad_json(message, param)
    })
}

/// serde's message for a value that fits none of a field's forms (`data did not match any
/// variant of untagged enum EmbeddingInput at line 1 column 54`) in the API's words: the forms
/// the field takes, and where in the body.
fn untagged_forms(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("data did not match any variant of untagged enum ")?;
    let (name, at) = rest.split_once(' ').unwrap_or((rest, ""));
    let forms = match name {
        "EmbeddingInput" | "PromptInput" => {
            "a string, an array of strings, an array of token ids (integers) or an array of \
             arrays of token ids"
        }
        "QueryInput" | "EmbedInput" | "StopSpec" => "a string or an array of strings",
        "MessageContent" => "a string or an array of content parts",
        _ => "one of the forms the API reference lists",
    };
    let at = at.trim();
    Some(if at.is_empty() {
        format!("expected {forms}")
    } else {
        format!("expected {forms} ({at})")
    })
}

/// `missing field `model`` → `model`.
fn missing_field(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("missing field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Req {
        model: String,
        messages: Vec<Msg>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Msg {
        role: String,
    }

    #[test]
    fn names_the_field() {
        let e = parse::<Req>(br#"{"messages":[]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("model"));
        let e = parse::<Req>(br#"{"model":"m","messages":[{"role":3}]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e = parse::<Req>(b"{not json").unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        assert!(parse::<Req>(b"  ").is_err());
    }

    #[test]
    fn a_value_of_no_accepted_form_is_described_by_its_forms() {
        use crate::api::openai::wire::embeddings::EmbeddingRequest;
        let body = br#"{"model":"m","input":[[1,2],["x"]]}"#;
        let e = parse::<EmbeddingRequest>(body).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("input"));
        assert!(!e.message.contains("untagged"), "{}", e.message);
        assert!(
            e.message
                .starts_with("Invalid value for 'input': expected a string, an array of"),
            "{}",
            e.message
        );
        assert!(
            e.message.ends_with("(at line 1 column 35)"),
            "{}",
            e.message
        );
    }
}
