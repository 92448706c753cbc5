//! Registration, the credential check and the identity requirement, over real HTTP.

use serde_json::{json, Value};

use crate::helpers::{
    assert_error, assertion, check_credentials, service_assertion, spawn_app, User,
};

#[tokio::test]
async fn registration_normalises_the_email_and_refuses_duplicates_with_409() {
    let app = spawn_app().await;
    let r = app
        .register("  Alice@Example.COM ", "correct horse battery")
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["email"], "alice@example.com");
    assert!(v.get("password_hash").is_none());
    let r = app.register("alice@example.com", "another password").await;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_error(status, &body, 409, "registration_conflict");
    assert!(
        !body.to_string().contains("alice"),
        "the conflict does not echo the account"
    );
}

#[tokio::test]
async fn invalid_registrations_get_422_with_a_detail_per_field() {
    let app = spawn_app().await;
    let r = app.register("not-an-email", "short").await;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_error(status, &body, 422, "validation_failed");
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["email", "password"]);
    let r = app.register("bob@example.com", &"x".repeat(257)).await;
    assert_eq!(r.status(), 422);
}

#[tokio::test]
async fn malformed_bodies_get_clear_4xx_answers() {
    let app = spawn_app().await;
    let send = |body: Vec<u8>, ctype: &'static str| {
        let c = app.client.clone();
        let url = app.url("/auth/register");
        async move {
            let r = c
                .post(url)
                .header("content-type", ctype)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            (
                status,
                serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
            )
        }
    };
    let (s, b) = send(b"{\"email\":".to_vec(), "application/json").await;
    assert_error(s, &b, 400, "malformed_json");
    let (s, b) = send(Vec::new(), "application/json").await;
    assert_error(s, &b, 400, "malformed_json");
    let (s, b) = send(
        vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
        "application/json",
    )
    .await;
    assert_eq!(s, 400, "invalid UTF-8: {b}");
    let (s, b) = send(
        br#"{"email":"a@example.com","password":"correct horse","admin":true}"#.to_vec(),
        "application/json",
    )
    .await;
    assert_error(s, &b, 422, "validation_failed");
    let (s, b) = send(
        br#"{"email":123,"password":"correct horse"}"#.to_vec(),
        "application/json",
    )
    .await;
    assert_error(s, &b, 422, "validation_failed");
    let (s, b) = send(
        br#"{"email":"a@example.com","password":"correct horse"}"#.to_vec(),
        "text/plain",
    )
    .await;
    assert_error(s, &b, 415, "unsupported_media_type");
    let big = format!(
        r#"{{"email":"a@example.com","password":"{}"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let (s, b) = send(big.into_bytes(), "application/json").await;
    assert_error(s, &b, 413, "payload_too_large");
}

#[tokio::test]
async fn the_credential_check_is_404_for_anyone_but_the_proxy() {
    // Any peer that reaches the API listener without the proxy's service assertion finds no such
    // route, so it is no unthrottled password oracle.
    let app = spawn_app().await;
    let user = app.new_user("dora@example.com").await;
    let path = "/internal/credentials/verify";
    let body = json!({"email": "dora@example.com", "password": "correct horse battery"}); // pragma: allowlist secret (test account)
    let proxy = todo_backend::identity::SERVICE_SUBJECT;
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("no assertion", vec![]),
        (
            "the user id header alone",
            vec![("x-user-id", proxy.to_owned())],
        ),
        (
            "a user's assertion for this very route",
            vec![
                ("x-user-id", user.id.clone()),
                ("x-identity-assertion", assertion(&user, "POST", path)),
            ],
        ),
        (
            "a user's assertion under the proxy's name",
            vec![
                ("x-user-id", proxy.to_owned()),
                ("x-identity-assertion", assertion(&user, "POST", path)),
            ],
        ),
        (
            "a service assertion for another route",
            vec![
                ("x-user-id", proxy.to_owned()),
                ("x-identity-assertion", service_assertion("POST", "/todos")),
            ],
        ),
        (
            "a service assertion for another method",
            vec![
                ("x-user-id", proxy.to_owned()),
                ("x-identity-assertion", service_assertion("GET", path)),
            ],
        ),
        (
            "a forged assertion",
            vec![
                ("x-user-id", proxy.to_owned()),
                (
                    "x-identity-assertion",
                    "eyJhbGciOiJub25lIn0.e30.".to_owned(), // pragma: allowlist secret (alg none, no claims)
                ),
            ],
        ),
    ];
    for (name, headers) in cases {
        let mut r = app.client.post(app.url(path)).json(&body);
        for (n, v) in headers {
            r = r.header(n, v);
        }
        let r = r.send().await.unwrap();
        let s = r.status().as_u16();
        let b: Value = r.json().await.unwrap();
        assert_eq!(s, 404, "{name}: {b}");
        assert_error(s, &b, 404, "not_found");
    }
    // The proxy itself is answered.
    assert_eq!(check_credentials(&app, &body).await.status(), 200);
    // A service assertion is no user: it cannot read a user's data.
    let r = app
        .client
        .get(app.url("/me"))
        .header("x-user-id", proxy)
        .header("x-identity-assertion", service_assertion("GET", "/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn the_credential_check_answers_the_same_for_wrong_passwords_and_unknown_users() {
    let app = spawn_app().await;
    let user = app.new_user("carol@example.com").await;
    let check = |email: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let r = check_credentials(app, &json!({"email": email, "password": password})).await;
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (s, body) = check("Carol@Example.com", "correct horse battery").await;
    assert_eq!(s, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["user_id"].as_str().unwrap(), v["email"].as_str().unwrap()),
        (user.id.as_str(), "carol@example.com")
    );
    assert_eq!(v["roles"], json!(["user"]));
    let wrong = check("carol@example.com", "wrong password!").await;
    let unknown = check("nobody@example.com", "correct horse battery").await;
    let malformed = check("not an email", "correct horse battery").await;
    assert_eq!(wrong.0, 401);
    assert_eq!(wrong, unknown, "unknown accounts are indistinguishable");
    assert_eq!(wrong, malformed);
}

#[tokio::test]
async fn api_routes_refuse_requests_without_a_valid_assertion() {
    let app = spawn_app().await;
    let user = app.new_user("dave@example.com").await;
    let get = |headers: Vec<(&'static str, String)>| {
        let mut req = app.client.get(app.url("/me"));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move {
            let r = req.send().await.unwrap();
            let www = r.headers().get("www-authenticate").is_some();
            (r.status().as_u16(), www, r.json::<Value>().await.unwrap())
        }
    };
    // Forged identity headers, as a client bypassing the proxy would send them.
    let (s, www, b) = get(vec![
        ("x-user-id", user.id.clone()),
        ("x-user-email", user.email.clone()),
    ])
    .await;
    assert_error(s, &b, 401, "unauthenticated");
    assert!(www);
    // An assertion for another user, another path or another method.
    let other = User {
        id: uuid::Uuid::new_v4().to_string(),
        email: "x@example.com".into(),
    };
    let (s, _, _) = get(vec![
        ("x-user-id", user.id.clone()),
        ("x-identity-assertion", assertion(&other, "GET", "/me")),
    ])
    .await;
    assert_eq!(s, 401);
    let (s, _, _) = get(vec![
        ("x-user-id", user.id.clone()),
        ("x-identity-assertion", assertion(&user, "GET", "/todos")),
    ])
    .await;
    assert_eq!(s, 401);
    let (s, _, _) = get(vec![
        ("x-user-id", user.id.clone()),
        ("x-identity-assertion", assertion(&user, "DELETE", "/me")),
    ])
    .await;
    assert_eq!(s, 401);
    // The real thing.
    let (s, b) = app.call(&user, "GET", "/me", None).await;
    assert_eq!((s, b["id"].as_str().unwrap()), (200, user.id.as_str()));
}

#[tokio::test]
async fn the_openapi_document_covers_every_route() {
    let app = spawn_app().await;
    let v: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = v["paths"].as_object().unwrap();
    for p in [
        "/auth/register",
        "/me",
        "/todos",
        "/todos/{id}",
        "/categories",
        "/categories/{id}",
    ] {
        assert!(paths.contains_key(p), "{p} missing from openapi.json");
    }
    assert!(v["components"]["schemas"]["ErrorBody"].is_object());
    assert!(
        !paths.contains_key("/internal/credentials/verify"),
        "the proxy's internal route is not advertised"
    );

    // Every reference resolves (generators and fuzzers cannot load an operation otherwise).
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&v, &mut all);
    assert!(all.len() > 10, "{all:?}");
    for r in &all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r}"));
        assert!(v["components"]["schemas"][name].is_object(), "dangling {r}");
    }
    // The list's parameters are query parameters, all optional, and `If-None-Match`.
    for p in v["paths"]["/todos"]["get"]["parameters"]
        .as_array()
        .unwrap()
    {
        let place = if p["name"] == "If-None-Match" {
            "header"
        } else {
            "query"
        };
        assert_eq!(
            (p["in"].as_str(), p["required"].as_bool()),
            (Some(place), Some(false)),
            "{p}"
        );
    }
    // What the code enforces is in the schema.
    let schemas = &v["components"]["schemas"];
    let title = &schemas["CreateTodo"]["properties"]["title"];
    assert_eq!(
        (title["minLength"].as_u64(), title["maxLength"].as_u64()),
        (Some(1), Some(200))
    );
    assert!(title["pattern"].is_string());
    for patch in ["PatchTodo", "PatchCategory"] {
        assert_eq!(schemas[patch]["minProperties"], 1, "{patch}");
        assert!(schemas[patch].get("maxProperties").is_none(), "{patch}");
    }
    assert_eq!(
        schemas["RegisterRequest"]["properties"]["password"]["minLength"],
        8
    );
    // Every status an operation can answer is documented, with the security it needs.
    assert_eq!(
        v["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let statuses = op["responses"].as_object().unwrap();
            let mut want = vec!["405", "429", "503"];
            if path != "/auth/register" {
                want.push("401");
                assert_eq!(op["security"][0]["bearer"], json!([]), "{method} {path}");
            }
            if op.get("requestBody").is_some() {
                want.extend(["400", "413", "415", "422"]);
            }
            for status in want {
                assert!(
                    statuses.contains_key(status),
                    "{method} {path}: no {status}"
                );
            }
        }
    }
}

#[tokio::test]
async fn health_and_metrics_are_served_on_the_admin_listener_only() {
    let app = spawn_app().await;
    let admin = |p: &str| format!("http://{}{p}", app.admin_addr);
    assert_eq!(
        app.client
            .get(admin("/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.client
            .get(admin("/health/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.new_user("erin@example.com").await;
    let text = app
        .client
        .get(admin("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("todo_backend_users_registered_total 1"),
        "{text}"
    );
    assert!(text.contains("todo_backend_http_requests_total{method=\"POST\",route=\"/auth/register\",status=\"201\"} 1"), "{text}");
    assert!(text.contains("todo_backend_db_pool_connections{state=\"idle\"}"));
    let acquires: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("todo_backend_db_pool_acquires_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("acquire counter exported");
    assert!(
        acquires >= 2.0,
        "registration and credential lookups took connections: {acquires}"
    );
    assert!(text.contains("todo_backend_db_pool_acquire_wait_seconds_total"));
    assert_eq!(
        app.client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        app.client
            .get(app.url("/health/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}
