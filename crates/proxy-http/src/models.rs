//! `GET /v1/models` and `GET /v1/models/{id}`: the names clients send, in Anthropic's shape.

use http::{Response, StatusCode};
use proxy_schema::{ErrorType, ModelInfo, ModelList};

use crate::service::{Body, json_response};
use crate::{ApiError, Gateway};

/// Percent-decodes a query value or path segment (`%3A` -> `:`; `+` is a space in query values).
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if bytes.len() >= i + 3 => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn model_info(m: &proxy_bedrock::ListedModel) -> ModelInfo {
    ModelInfo {
        kind: "model".into(),
        id: m.id.clone(),
        display_name: m.display_name.clone(),
        created_at: m.created_at.clone(),
    }
}

pub(crate) fn list_models(g: &Gateway, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let params: Vec<(String, String)> = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (percent_decode(k, true), percent_decode(v, true)))
        .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let limit = match get("limit") {
        None => 20,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(format!(
                    "limit: must be an integer between 1 and 1000, got `{v}`"
                )));
            }
        },
    };
    let all: Vec<ModelInfo> = g.listed_models().iter().map(model_info).collect();
    let position = |id: &str| {
        all.iter()
            .position(|m| m.id == id)
            .ok_or_else(|| ApiError::invalid(format!("no model with id `{id}` to page from")))
    };
    let (start, end) = match (get("after_id"), get("before_id")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "after_id and before_id cannot both be set",
            ));
        }
        (Some(after), None) => {
            let s = position(after)? + 1;
            (s, (s + limit).min(all.len()))
        }
        (None, Some(before)) => {
            let e = position(before)?;
            (e.saturating_sub(limit), e)
        }
        (None, None) => (0, limit.min(all.len())),
    };
    let page = all[start..end].to_vec();
    let has_more = if get("before_id").is_some() {
        start > 0
    } else {
        end < all.len()
    };
    Ok(json_response(
        StatusCode::OK,
        &ModelList {
            first_id: page.first().map(|m| m.id.clone()),
            last_id: page.last().map(|m| m.id.clone()),
            has_more,
            data: page,
        },
    ))
}

pub(crate) fn get_model(g: &Gateway, id: &str) -> Result<Response<Body>, ApiError> {
    // Only what the list shows: a name that would merely be passed on to Bedrock is not a model
    // the gateway knows.
    match g.listed_models().iter().find(|m| m.id == id) {
        Some(m) => Ok(json_response(StatusCode::OK, &model_info(m))),
        None => Err(ApiError::new(
            ErrorType::NotFoundError,
            format!("model: {id}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("us.anthropic.x-v1%3A0", true),
            "us.anthropic.x-v1:0"
        );
        assert_eq!(percent_decode("a+b%2", true), "a b%2");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("%zz%", false), "%zz%");
    }
}
