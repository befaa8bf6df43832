//! What the REST API tests share: the same `Api` mounted on an axum app and on a warp app,
//! and a client that sends `http` requests to either without a socket.

#![allow(dead_code, unreachable_pub)] // each test binary uses its own part

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use apsched::api::Api;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde_json::Value;
use warp::Filter;

// ===== the two apps =====

#[derive(Clone, Copy, Debug)]
pub enum Framework {
    Axum,
    Warp,
}

pub type Responder = Arc<
    dyn Fn(Request<Bytes>) -> Pin<Box<dyn Future<Output = Response<Bytes>> + Send>> + Send + Sync,
>;

pub fn app(framework: Framework, api: Api) -> Responder {
    match framework {
        Framework::Axum => {
            let router: axum::Router = apsched::axum::api_routes(api);
            Arc::new(move |request: Request<Bytes>| {
                let router = router.clone();
                Box::pin(async move {
                    use http_body_util::BodyExt;
                    use tower::ServiceExt;
                    let response = router
                        .oneshot(request.map(axum::body::Body::from))
                        .await
                        .unwrap();
                    let (parts, body) = response.into_parts();
                    Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
                })
            })
        }
        Framework::Warp => {
            let filter = apsched::warp::api_routes(api)
                .map(|reply| Box::new(reply) as Box<dyn warp::Reply>)
                .boxed();
            Arc::new(move |request: Request<Bytes>| {
                let filter = filter.clone();
                Box::pin(async move {
                    let mut builder = warp::test::request()
                        .method(request.method().as_str())
                        .path(&request.uri().to_string());
                    for (name, value) in request.headers() {
                        builder = builder.header(name, value);
                    }
                    builder.body(request.into_body()).reply(&filter).await
                })
            })
        }
    }
}

/// A client of one app, with a bearer token or none.
pub struct Client {
    pub app: Responder,
    pub token: Option<&'static str>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn error(&self) -> String {
        let json = self.json();
        assert_eq!(self.headers["content-type"], "application/json");
        json["error_message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error_message in {json}"))
            .to_owned()
    }
}

impl Client {
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = (self.app)(request.body(body).unwrap()).await;
        let (parts, body) = response.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, Bytes::new()).await
    }

    pub async fn post(&self, path: &str) -> Reply {
        self.send(Method::POST, path, None, Bytes::new()).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Reply {
        self.send(
            Method::POST,
            path,
            Some("application/json"),
            Bytes::from(body.to_string()),
        )
        .await
    }

    pub async fn patch_json(&self, path: &str, body: Value) -> Reply {
        self.send(
            Method::PATCH,
            path,
            Some("application/json"),
            Bytes::from(body.to_string()),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None, Bytes::new()).await
    }
}
