//! Test harness: real processes. `NatsServer` spawns `nats-server -js` on a free port with a
//! temp store; `Service` spawns the `impact` binary on port 0 with a temp data dir.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn nats_binary() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into())
}

pub struct NatsServer {
    pub port: u16,
    pub store: tempfile::TempDir,
    child: Option<Child>,
    /// A configuration file to start with (`-c`), instead of `-js` on `port`.
    config: Option<PathBuf>,
    env: Vec<(String, String)>,
}

/// The passwords the shipped configuration's users read from nats-server's environment.
pub const SERVICE_NATS_PASSWORD: &str = "service-password-for-tests";
pub const THAI_NATS_PASSWORD: &str = "thai-password-for-tests";

pub fn shipped_passwords() -> [(&'static str, &'static str); 3] {
    [
        ("IMPACT_NATS_PASSWORD", SERVICE_NATS_PASSWORD),
        ("FO_TH_NATS_PASSWORD", THAI_NATS_PASSWORD),
        ("FO_LA_NATS_PASSWORD", "lao-password-for-tests"),
    ]
}

/// The repository's shipped nats-server configuration `name` (under `deploy/nats/`), as a
/// test runs it: on `port` of loopback, its JetStream store in `store`, the shared users file
/// beside it, and cluster routes (for `cluster/nN.conf`) on `routes[N-1]`.
pub fn deploy_config(name: &str, port: u16, store: &Path, routes: &[u16]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nats");
    let text = std::fs::read_to_string(root.join(name)).unwrap();
    let mut text = text
        .replace(
            "listen: 127.0.0.1:4222",
            &format!("listen: 127.0.0.1:{port}"),
        )
        .replace("listen: 0.0.0.0:4222", &format!("listen: 127.0.0.1:{port}"))
        .replace(
            "\"/var/lib/nats\"",
            &format!("{:?}", store.display().to_string()),
        )
        // nats-server resolves an include beside the file: `with_config` copies it there.
        .replace("include ../users.conf", "include users.conf");
    if let Some(n) = name
        .strip_prefix("cluster/n")
        .and_then(|rest| rest.strip_suffix(".conf"))
    {
        let own: usize = n.parse().unwrap();
        text = text.replace(
            "listen: 0.0.0.0:6222",
            &format!("listen: 127.0.0.1:{}", routes[own - 1]),
        );
        for (index, route) in routes.iter().enumerate() {
            text = text.replace(
                &format!("nats-route://n{}:6222", index + 1),
                &format!("nats-route://127.0.0.1:{route}"),
            );
        }
    }
    assert!(
        !text.contains("/var/lib/nats") && !text.contains(":4222"),
        "{text}"
    );
    text
}

impl NatsServer {
    pub fn start() -> NatsServer {
        let store = tempfile::tempdir().unwrap();
        let mut server = NatsServer {
            port: free_port(),
            store,
            child: None,
            config: None,
            env: Vec::new(),
        };
        server.restart();
        server
    }

    /// nats-server with the configuration `make(port, store dir)` returns, and `env` (the
    /// passwords the shipped configuration reads from the environment).
    pub fn with_config(
        make: impl FnOnce(u16, &Path) -> String,
        env: &[(&str, &str)],
    ) -> NatsServer {
        let port = free_port();
        NatsServer::with_config_on(port, make, env)
    }

    pub fn with_config_on(
        port: u16,
        make: impl FnOnce(u16, &Path) -> String,
        env: &[(&str, &str)],
    ) -> NatsServer {
        let store = tempfile::tempdir().unwrap();
        let path = store.path().join("nats-server.conf");
        let text = make(port, &store.path().join("js"));
        if text.contains("include users.conf") {
            let users = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nats/users.conf");
            std::fs::copy(users, store.path().join("users.conf")).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        let mut server = NatsServer {
            port,
            store,
            child: None,
            config: Some(path),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and store.
    pub fn restart(&mut self) {
        if let Some(config) = &self.config {
            let child = Command::new(nats_binary())
                .arg("-c")
                .arg(config)
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nats-server on PATH or NATS_SERVER_BIN (scripts/test installs it)");
            self.child = Some(child);
            wait_for_port(self.port);
            return;
        }
        let child = Command::new(nats_binary())
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server on PATH or NATS_SERVER_BIN (scripts/test installs it)");
        self.child = Some(child);
        wait_for_port(self.port);
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} did not open");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct Service {
    pub data_dir: PathBuf,
    pub base: String,
    child: Option<Child>,
    args: Vec<String>,
    /// A command the binary is started under (`prlimit …`), if any.
    pub wrapper: Vec<String>,
    /// Where it listens: a free port by default; a fixed one to come back on the same origin.
    pub http: String,
    _temp: Option<tempfile::TempDir>,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_impact")
}

impl Service {
    /// `impact serve` on a fresh temp data dir with `extra` arguments.
    pub fn start(extra: &[&str]) -> Service {
        Service::start_at("127.0.0.1:0", extra)
    }

    /// `start`, listening at `http`: a restart comes back at the same address (the same origin,
    /// for a browser).
    pub fn start_at(http: &str, extra: &[&str]) -> Service {
        let temp = tempfile::tempdir().unwrap();
        let data_dir = temp.path().join("data");
        let mut service = Service {
            data_dir,
            base: String::new(),
            child: None,
            args: extra.iter().map(|a| a.to_string()).collect(),
            wrapper: Vec::new(),
            http: http.into(),
            _temp: Some(temp),
        };
        service.restart();
        service
    }

    /// `start`, the binary run under `wrapper` (a command that execs the rest of its line).
    pub fn start_under(wrapper: &[&str], extra: &[&str]) -> Service {
        let temp = tempfile::tempdir().unwrap();
        let mut service = Service {
            data_dir: temp.path().join("data"),
            base: String::new(),
            child: None,
            args: extra.iter().map(|a| a.to_string()).collect(),
            wrapper: wrapper.iter().map(|a| a.to_string()).collect(),
            http: "127.0.0.1:0".into(),
            _temp: Some(temp),
        };
        service.restart();
        service
    }

    pub fn start_in(data_dir: &Path, extra: &[&str]) -> Service {
        let mut service = Service {
            data_dir: data_dir.to_owned(),
            base: String::new(),
            child: None,
            args: extra.iter().map(|a| a.to_string()).collect(),
            wrapper: Vec::new(),
            http: "127.0.0.1:0".into(),
            _temp: None,
        };
        service.restart();
        service
    }

    /// Starts the binary again on the same data dir (a new port). Without a `--config` of the
    /// test's own, scheduled reviews are off so the log holds only what the test wrote.
    pub fn restart(&mut self) {
        let mut config_args = Vec::new();
        if !self.args.iter().any(|arg| arg == "--config") {
            std::fs::create_dir_all(&self.data_dir).unwrap();
            let config = self.data_dir.with_extension("toml");
            std::fs::write(&config, "[review]\nschedule = \"off\"\n").unwrap();
            config_args = vec!["--config".to_owned(), config.to_string_lossy().into_owned()];
        }
        let mut command = match self.wrapper.split_first() {
            None => Command::new(binary()),
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary());
                command
            }
        };
        let mut child = command
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--http", &self.http])
            .args(&self.args)
            .args(&config_args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = lines
            .next()
            .expect("the service prints its address")
            .unwrap();
        let address = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.base = address;
        self.child = Some(child);
    }

    /// The exit status, if the process has ended by itself.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().unwrap())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn event(
    event_type: &str,
    action: &str,
    country: &str,
    outcome: Option<&str>,
    occurred_on: &str,
    data: Value,
) -> Value {
    let mut event = json!({
        "event_id": new_id(),
        "type": event_type,
        "action_id": action,
        "country": country,
        "occurred_on": occurred_on,
        "reported_by": "fo-test",
        "data": data,
    });
    if let Some(outcome) = outcome {
        event["outcome_id"] = json!(outcome);
    }
    event
}

pub fn registered(action: &str, country: &str) -> Value {
    event(
        "action.registered",
        action,
        country,
        None,
        "2014-03-01",
        json!({"title": "Study visit", "modality": "study_visit", "partner_institutions": []}),
    )
}

pub fn track(
    action: &str,
    country: &str,
    outcome: &str,
    event_type: &str,
    occurred_on: &str,
) -> Value {
    event(
        event_type,
        action,
        country,
        Some(outcome),
        occurred_on,
        json!({}),
    )
}

/// Polls until `check` holds, for up to `seconds`.
pub async fn eventually<T>(seconds: u64, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {seconds}s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub async fn get_text(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

pub async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let response = client.post(url).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Every stored event of the global log, via the API's NDJSON stream.
pub async fn all_events(client: &reqwest::Client, service: &Service) -> Vec<Value> {
    log_stream(client.get(service.url("/v1/events?after=0"))).await
}

/// The NDJSON stream of the log that `request` asks for, read whole.
async fn log_stream(request: reqwest::RequestBuilder) -> Vec<Value> {
    let text = request
        .header("Accept", "application/x-ndjson")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Every view record of a stopped service's store, by key.
pub fn records(data_dir: &Path) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    let store = impact::store::Store::open(data_dir, 16 << 20).unwrap();
    store.record_bytes().map(Result::unwrap).collect()
}

/// The views a stopped service left equal those a rebuild from its log gives, byte for byte.
pub fn assert_views_equal_a_rebuild(data_dir: &Path) {
    let before = records(data_dir);
    impact::commands::rebuild_within(data_dir, false, 32 << 20, 0).unwrap();
    assert_eq!(before, records(data_dir), "the views equal a rebuild");
}

/// The NATS the service runs against in a test: one server, or a three-server JetStream
/// cluster (no users: the tests that publish anything anywhere, like the poison one).
pub struct Brokers {
    pub servers: Vec<NatsServer>,
}

impl Brokers {
    pub fn single() -> Brokers {
        Brokers {
            servers: vec![NatsServer::start()],
        }
    }

    pub fn cluster() -> Brokers {
        Brokers::cluster_of(
            |n, port, store, routes| {
                let all: Vec<String> = routes
                    .iter()
                    .map(|route| format!("\"nats-route://127.0.0.1:{route}\""))
                    .collect();
                format!(
                    "listen: 127.0.0.1:{port}\nserver_name: n{}\njetstream {{ store_dir: {:?} }}\n\
                     cluster {{ name: impact, listen: 127.0.0.1:{}, routes: [{}] }}\n",
                    n + 1,
                    store.display().to_string(),
                    routes[n],
                    all.join(", ")
                )
            },
            &[],
        )
    }

    /// The repository's shipped three-server configuration (`deploy/nats/cluster/`), with the
    /// passwords its users read from the environment.
    pub fn shipped_cluster(env: &[(&str, &str)]) -> Brokers {
        Brokers::cluster_of(
            |n, port, store, routes| {
                deploy_config(&format!("cluster/n{}.conf", n + 1), port, store, routes)
            },
            env,
        )
    }

    /// Three servers on free ports: `make(n, port, store, route ports)` is server n's config.
    fn cluster_of(
        make: impl Fn(usize, u16, &Path, &[u16]) -> String,
        env: &[(&str, &str)],
    ) -> Brokers {
        let clients: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let servers = (0..3)
            .map(|n| {
                NatsServer::with_config_on(
                    clients[n],
                    |port, store| make(n, port, store, &routes),
                    env,
                )
            })
            .collect();
        Brokers { servers }
    }

    /// The servers' addresses, to connect a client to all of them.
    pub fn addrs(&self) -> Vec<async_nats::ServerAddr> {
        self.servers
            .iter()
            .map(|server| server.url().parse().unwrap())
            .collect()
    }

    /// A client of all the servers as `user` (password `password`), replies on `inbox`.
    pub async fn connect_as(&self, user: &str, password: &str, inbox: &str) -> async_nats::Client {
        async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
            .custom_inbox_prefix(inbox)
            .connect(self.addrs())
            .await
            .unwrap()
    }

    /// The service's `[nats]` lines for these servers.
    pub fn nats_lines(&self) -> String {
        let urls: Vec<String> = self
            .servers
            .iter()
            .map(|server| format!("\"{}\"", server.url()))
            .collect();
        format!(
            "urls = [{}]\nreplicas = {}\n",
            urls.join(", "),
            self.servers.len()
        )
    }

    /// A plain client of all the servers.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(async_nats::connect(self.addrs()).await.unwrap())
    }

    /// Waits until JetStream answers on these servers: a cluster elects its meta leader a while
    /// after its servers start, longer on a busy machine.
    pub async fn jetstream_ready(&self) {
        let js = self.jetstream().await;
        let deadline = Instant::now() + Duration::from_secs(120);
        while js.query_account().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "JetStream did not become ready in 120 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The server leading the stream `IMPACT` now (the only one, on a single server).
    pub async fn leader(&self) -> usize {
        if self.servers.len() == 1 {
            return 0;
        }
        let js = self.jetstream().await;
        eventually(30, async || {
            let mut stream = js.get_stream("IMPACT").await.ok()?;
            let info = stream.info().await.ok()?;
            let name = info.cluster.as_ref()?.leader.clone()?;
            name.trim_start_matches('n')
                .parse::<usize>()
                .ok()
                .map(|n| n - 1)
        })
        .await
    }
}

pub fn sha256_hex(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// `impact.toml` in `dir`: `before` (other sections), scheduled reviews off, and the three
/// principals the tests sign in as: `fo-bangkok` (field office of TH, token `fo-token`),
/// `eval` (evaluator, `eval-token`) and `root` (admin, `admin-token`). Its path.
pub fn principals_config(dir: &Path, before: &str) -> String {
    let path = dir.join("impact.toml");
    let text = format!(
        "{before}[review]\nschedule = \"off\"\n\n\
         [[principals]]\nname = \"fo-bangkok\"\nrole = \"field_office\"\ncountries = [\"TH\"]\ntoken_sha256 = \"{}\"\n\n\
         [[principals]]\nname = \"eval\"\nrole = \"evaluator\"\ntoken_sha256 = \"{}\"\n\n\
         [[principals]]\nname = \"root\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n",
        sha256_hex("fo-token"),
        sha256_hex("eval-token"),
        sha256_hex("admin-token")
    );
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// Every stored event of the global log, read with a bearer token (auth on).
pub async fn all_events_as(client: &reqwest::Client, service: &Service, token: &str) -> Vec<Value> {
    log_stream(
        client
            .get(service.url("/v1/events?after=0"))
            .bearer_auth(token),
    )
    .await
}

// The pages over HTTP, as a browser without JavaScript meets them.

/// A client that does not follow redirects, so each `303` can be checked.
pub fn page_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in with `token`: the session cookie's `name=value`.
pub async fn sign_in(service: &Service, token: &str) -> String {
    let response = page_client()
        .post(service.url("/login"))
        .form(&[("token", token), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

pub async fn page(service: &Service, path: &str, cookie: &str) -> (u16, String) {
    let response = page_client()
        .get(service.url(path))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The page's CSRF token (the sign-out form's hidden field).
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

/// Posts `events` (one or an array) as the admin and waits until they are applied.
pub async fn admin_posts(service: &Service, events: Value) {
    let response = page_client()
        .post(service.url("/v1/events?wait=true"))
        .bearer_auth("admin-token")
        .json(&events)
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(status, 202, "{}", response.text().await.unwrap());
}

/// The service with the demo data (auth off), once the demo has loaded.
pub async fn demo() -> Service {
    let service = Service::start(&["--demo"]);
    eventually(30, async || {
        let (status, _) = get_json(&client(), &service.url("/v1/actions/MIEUX-LA-2016-02")).await;
        (status == 200).then_some(())
    })
    .await;
    service
}

/// GETs `path` with a bearer token: the status and the body's bytes.
pub async fn get_bytes(service: &Service, token: &str, path: &str) -> (u16, Vec<u8>) {
    let response = client()
        .get(service.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}
