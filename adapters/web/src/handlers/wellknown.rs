use actix_web::{web, HttpResponse};

use super::blocking;
use crate::error::ApiError;
use crate::ApiState;

#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "keys",
    description = "The public keys access tokens may be signed with: the current key and, during a \
                   rotation, the previous one until every token it signed has expired.",
    responses((status = 200, description = "JWKS (RFC 7517)", body = crate::openapi::Jwks)),
)]
/// `GET /.well-known/jwks.json`: every key a valid token may be signed with.
/// The key store may re-read its directory, so this runs off the async workers.
pub async fn jwks(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let keys = blocking(move || state.jwks.jwks()).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=60"))
        .json(keys))
}
