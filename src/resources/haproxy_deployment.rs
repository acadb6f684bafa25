//! `immutable_haproxy_deployment`: the same release model on one HAProxy backend, through
//! HAProxy's Runtime API (a Unix socket, on this host or over SSH). The provider owns the
//! backend's servers: `blue_N` and `green_N`, added at runtime with `check`, the live
//! colour at full weight and the standby at weight 0, still checked.

use std::sync::Arc;

use crate::provider::Shared;
use crate::resources::release::analysis::Terms;
use crate::resources::release::blocks;
use crate::resources::release::lifecycle::{self, ImportError, Site};
use crate::resources::release::model::set;
use crate::resources::release::schema::{self, Words};
use crate::router::haproxy::fragment::{Fragment, MARKER};
use crate::router::haproxy::runtime::{parse_runtime_api, Transport};
use crate::router::haproxy::ssh::{self, SshTarget};
use crate::router::haproxy::HaproxyRouter;
use crate::router::Color;
use crate::tfplugin::diagnostics::{AttributePath, Diagnostics};
use crate::tfplugin::resource::{Ctx, Resource};
use crate::tfplugin::schema::{Attribute, Block, Nesting, Schema};
use crate::tfplugin::value::{Type, Value};
use crate::validators;

const SSH_PORT: i64 = 22;

pub struct HaproxyDeployment {
    pub shared: Arc<Shared>,
}

fn schema() -> Schema {
    let block = Block::new(
        "Blue/green releases on one HAProxy backend, through HAProxy's Runtime API: no reload, no dropped connection. The provider adds the backend's servers at runtime (`blue_1`, `blue_2`, ... and `green_1`, ...), each with `check`: the live colour at full weight and the standby at weight 0, still health-checked. \
         A new `release` (or new `targets`) lands on the standby colour: the plan shows the colour flip, and apply adds the servers, waits for HAProxy's checks and the HTTP checks, shifts the weights (raising the new colour before lowering the old, so the backend never has zero weight), verifies them, bakes, and keeps the previous colour warm for an instant rollback. \
         HAProxy fails closed (a backend with no UP server answers 503), so the provider never cuts over to a colour with no UP server. A reload of HAProxy drops runtime servers: the next plan shows it and apply restores the live colour, gated.",
    )
    .attribute(
        Attribute::string("runtime_api")
            .required()
            .description("HAProxy's Runtime API socket, `unix:///run/haproxy/admin.sock` (from `stats socket /run/haproxy/admin.sock level admin` in the global section). On this host, or on `ssh.host` with an `ssh` block. Only Unix sockets: the Runtime API has no authentication of its own.")
            .validate(|v: &Value| match v.as_str() {
                Some(s) => parse_runtime_api(s).map(|_| ()),
                None => Ok(()),
            }),
    )
    .attribute(
        Attribute::string("backend")
            .required()
            .requires_replace()
            .description("The backend the release model owns, declared in HAProxy's configuration with a dynamic algorithm (`balance roundrobin`, `leastconn`, ...), its checks (`option httpchk`, `http-check ...`) and no servers.")
            .validate(validators::haproxy_name),
    )
    .attribute(
        Attribute::new("targets", Type::list(Type::object([("id", Type::String), ("port", Type::Number)])))
            .required()
            .nested_list(vec![
                Attribute::string("id").required().description("IP address of the server (HAProxy resolves no host name for a server added at runtime).").validate(validators::ip_address),
                Attribute::number("port").required().description("Port, 1-65535.").validate(validators::int_in_range(1, 65535)),
            ])
            .description("The release's servers, added to the standby colour (stale servers there are removed first). A change of the set lands on the standby colour; reordering them is not a release."),
    )
    .attribute(
        Attribute::string("config_fragment")
            .optional()
            .description(&format!("Path of the backend's own configuration file on this host (loaded with `-f` beside haproxy.cfg, e.g. `/etc/haproxy/conf.d/web.cfg`), kept in step with the runtime servers so that a reload of HAProxy keeps the deployment. The file holds the backend's section (`backend web`, `balance`, checks) and nothing after it; the provider keeps, after the line `{MARKER}` at its end, the servers and the colours' records. Each version is checked with `haproxy -c` before it replaces the file. Not with `ssh`."))
            .validate(validators::absolute_path),
    )
    .attribute(Attribute::string("id").computed().use_state_for_unknown().description("`<runtime_api>,<backend>`."))
    .block("ssh", Nesting::Single, ssh_block());
    Schema::new(schema::with_release_model(
        block,
        &Words {
            checker: "HAProxy",
            splitter: "the backend's server weights, in percent",
            analysis: Terms {
                placeholders: &["color", "release", "backend"],
                cloudwatch: false,
            },
        },
    ))
}

fn ssh_block() -> Block {
    Block::new("Reach `runtime_api` on a remote host through an SSH channel to the socket (OpenSSH's `direct-streamlocal`, allowed by sshd's default `AllowStreamLocalForwarding yes`). The host key is pinned: there is no trust on first use.")
        .attribute(Attribute::string("host").required().description("Host name or IP address of the HAProxy host.").validate(validators::host))
        .attribute(Attribute::number("port").optional().description(&format!("SSH port. Defaults to `{SSH_PORT}`.")).validate(validators::int_in_range(1, 65535)))
        .attribute(Attribute::string("user").required().description("User to log in as; needs write access to the socket.").validate(validators::non_empty))
        .attribute(Attribute::string("private_key").optional().sensitive().description("The user's private key, in OpenSSH format (e.g. `file(\"~/.ssh/id_ed25519\")`). Sensitive and never logged, but stored in the state: on Terraform 1.11 or later prefer `private_key_wo`. Exactly one of the two.").validate(private_key))
        .attribute(Attribute::string("private_key_wo").optional().sensitive().write_only().description("The user's private key, as `private_key` takes it, never stored in the plan or the state (write-only: Terraform 1.11 or later; from an ephemeral variable or resource). Terraform gives it to the provider only during an apply, so a plan or refresh does not read the backend over SSH (the state is taken as it is, and a create's colours are known after apply), and a destroy leaves the backend as it is. A change alone is not seen: bump `private_key_wo_version` with it.").validate(private_key))
        .attribute(Attribute::number("private_key_wo_version").optional().description("Any number, changed whenever `private_key_wo` changes, so that the plan shows the change (`private_key_wo` itself is never compared).").validate(validators::int_in_range(0, i64::MAX)))
        .attribute(Attribute::string("host_key").required().description("The host's public key, as an OpenSSH public key line (the content of `/etc/ssh/ssh_host_ed25519_key.pub`), as Terraform's `connection` blocks take it. The connection is refused before anything is sent when the host presents another key.").validate(|v: &Value| match v.as_str() {
            Some(line) => ssh::parse_host_key(line),
            None => Ok(()),
        }))
}

fn private_key(v: &Value) -> Result<(), String> {
    match v.as_str() {
        Some(key) => ssh::parse_private_key(key),
        None => Ok(()),
    }
}

/// The `ssh` block, when there is one.
fn ssh_settings(config: &Value) -> Option<&Value> {
    config.get("ssh").filter(|s| !s.is_null())
}

/// Whether the configuration reaches HAProxy over SSH with a key Terraform withholds
/// here: `private_key_wo` is given only to an apply, never to a plan, refresh or destroy.
fn key_withheld(config: &Value) -> bool {
    ssh_settings(config).is_some_and(|ssh| {
        ["private_key", "private_key_wo"]
            .iter()
            .all(|name| ssh.get(name).is_none_or(Value::is_null))
    })
}

/// How to reach the Runtime API from a configuration; `None` while any part is unknown.
fn transport(config: &Value) -> Option<Transport> {
    let socket = config.get("runtime_api")?.as_str()?;
    let path = parse_runtime_api(socket).ok()?;
    let Some(ssh) = ssh_settings(config) else {
        return Some(Transport::Local(path));
    };
    let text = |name: &str| ssh.get(name).and_then(Value::as_str).map(str::to_string);
    // Unknown is `None` for the whole; neither key set is a key withheld.
    let private_key = match ["private_key", "private_key_wo"]
        .iter()
        .find_map(|name| ssh.get(name).filter(|v| !v.is_null()))
    {
        Some(key) => Some(key.as_str()?.to_string()),
        None => None,
    };
    Some(Transport::Ssh {
        target: SshTarget {
            host: text("host")?,
            port: ssh.get("port").and_then(Value::as_i64).unwrap_or(SSH_PORT) as u16,
            user: text("user")?,
            private_key,
            host_key: text("host_key")?,
        },
        socket: path.to_string_lossy().into_owned(),
    })
}

/// HAProxy's own check of each server, timed as `health_check` says: `inter` is the
/// interval, `rise` the healthy threshold, `fall` the unhealthy threshold (HAProxy's 3
/// when it is 0).
fn check_settings(config: &Value) -> String {
    match blocks::health(config) {
        Ok(h) => format!(
            "inter {}ms rise {} fall {}",
            h.interval.as_millis().max(1),
            h.healthy_threshold,
            if h.unhealthy_threshold == 0 {
                3
            } else {
                h.unhealthy_threshold
            }
        ),
        Err(_) => String::new(),
    }
}

fn no_extras(_: Option<Color>) -> Vec<(&'static str, Value)> {
    Vec::new()
}

/// The backend's [`Site`]: every problem is about `backend` or `runtime_api`.
fn site(router: &HaproxyRouter) -> Site<'_> {
    Site {
        router,
        test_route: None,
        noun: "backend",
        router_attr: "backend",
        reach_attr: "runtime_api",
        color_attrs: ["backend", "backend"],
        problem_title: "The backend cannot be used for blue/green",
        checked: "backend",
        live_extras: &no_extras,
        alarms: None,
        leases: None,
    }
}

impl HaproxyDeployment {
    /// The router for a configuration's backend; `None` while it is unknown.
    fn router(config: &Value) -> Option<HaproxyRouter> {
        let backend = config.get("backend")?.as_str()?;
        let fragment = config
            .get("config_fragment")
            .and_then(Value::as_str)
            .map(|path| Fragment { path: path.into() });
        Some(HaproxyRouter::new(
            transport(config)?,
            backend.to_string(),
            check_settings(config),
            fragment,
        ))
    }

    fn id(config: &Value) -> Option<String> {
        let text = |name: &str| config.get(name).and_then(Value::as_str);
        Some(format!("{},{}", text("runtime_api")?, text("backend")?))
    }

    async fn deploy(
        &self,
        ctx: &Ctx,
        prior: &Value,
        planned: &Value,
        diags: &mut Diagnostics,
    ) -> Value {
        let Some(router) = Self::router(planned) else {
            diags.error("Provider bug", "runtime_api or backend is unknown at apply");
            return prior.clone();
        };
        let site = Site {
            leases: self.shared.aws.s3_leases().await,
            ..site(&router)
        };
        lifecycle::apply(&site, ctx, &self.shared.http, prior, planned, diags).await
    }
}

#[tonic::async_trait]
impl Resource for HaproxyDeployment {
    fn type_name(&self) -> &'static str {
        "immutable_haproxy_deployment"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        if let Some(Value::List(targets)) = config.get("targets") {
            let mut seen = Vec::new();
            for (i, t) in targets.iter().enumerate() {
                let key = (t.get("id").cloned(), t.get("port").cloned());
                if !t.contains_unknown() && seen.contains(&key) {
                    diags.attribute_error(
                        AttributePath::attr("targets").then_index(i),
                        "Duplicate target",
                        "Each server of a colour needs its own id and port.",
                    );
                }
                seen.push(key);
            }
        }
        let has = |name: &str| config.get(name).is_some_and(|v| !v.is_null());
        if has("config_fragment") && has("ssh") {
            diags.attribute_error(
                AttributePath::attr("config_fragment"),
                "config_fragment is written on this host",
                "config_fragment keeps a file on the host Terraform runs on; with an ssh block HAProxy is elsewhere. Leave config_fragment out (a reload is then drift that apply restores), or run Terraform on the HAProxy host.",
            );
        }
        if let Some(ssh) = ssh_settings(config) {
            let set = |name: &str| ssh.get(name).is_some_and(|v| !v.is_null());
            let at = AttributePath::attr("ssh").then_attr("private_key");
            match (set("private_key"), set("private_key_wo")) {
                (true, true) => diags.attribute_error(
                    at,
                    "Two private keys",
                    "Give the key once: in ssh.private_key_wo (Terraform 1.11 or later, never stored) or in ssh.private_key (stored in the state), not both.",
                ),
                (false, false) => diags.attribute_error(
                    at,
                    "Missing private key",
                    "The ssh block needs the user's key: ssh.private_key_wo (Terraform 1.11 or later, never stored), or ssh.private_key (stored in the state).",
                ),
                _ => {}
            }
        }
        blocks::validate(config, diags);
    }

    async fn modify_plan(
        &self,
        _ctx: &Ctx,
        prior: &Value,
        config: &Value,
        planned: &mut Value,
        diags: &mut Diagnostics,
    ) {
        let (Some(router), Some(id)) = (Self::router(planned), Self::id(planned)) else {
            return lifecycle::plan_unknown(planned, &[]);
        };
        set(planned, "id", id);
        if prior.is_null() && key_withheld(planned) {
            // The colours are read at apply, the first time the key is given.
            lifecycle::plan_unknown(planned, &[])
        } else if prior.is_null() {
            lifecycle::plan_create(&site(&router), planned, diags).await
        } else {
            lifecycle::plan_update(&site(&router), prior, config, planned, &[], diags)
        }
    }

    async fn create(&self, ctx: &Ctx, planned: &Value, diags: &mut Diagnostics) -> Value {
        self.deploy(ctx, &Value::Null, planned, diags).await
    }

    /// Taken as it is when the key is write-only: a refresh is given no key.
    async fn read(&self, _ctx: &Ctx, state: &Value, diags: &mut Diagnostics) -> Value {
        if key_withheld(state) {
            return state.clone();
        }
        match Self::router(state) {
            Some(router) => lifecycle::read(&site(&router), state, diags).await,
            None => state.clone(),
        }
    }

    async fn update(
        &self,
        ctx: &Ctx,
        prior: &Value,
        planned: &Value,
        diags: &mut Diagnostics,
    ) -> Value {
        self.deploy(ctx, prior, planned, diags).await
    }

    /// Leaves the live colour serving, removes the standby's servers unless
    /// `retain_previous`, and the records.
    async fn delete(&self, _ctx: &Ctx, prior: &Value, diags: &mut Diagnostics) {
        if key_withheld(prior) {
            return diags.warning(
                "The backend is left as it is",
                "ssh.private_key_wo is write-only, and Terraform gives no write-only value to a destroy, so HAProxy was not reached: its servers keep their weights and the standby colour's servers stay. Remove them with `del server` if they are no longer wanted.",
            );
        }
        if let Some(router) = Self::router(prior) {
            lifecycle::delete(&site(&router), prior, diags).await
        }
    }

    /// `terraform import immutable_haproxy_deployment.x "unix:///run/haproxy/admin.sock,web"`:
    /// a local socket only (an import carries no `ssh` settings). The live colour from the
    /// weights, the releases from HAProxy's records, the servers as `targets`.
    async fn import(&self, _ctx: &Ctx, id: &str, diags: &mut Diagnostics) -> Option<Value> {
        let Some((socket, backend)) = id.rsplit_once(',') else {
            diags.error(
                "Invalid import ID",
                format!("Expected \"<runtime_api>,<backend>\", e.g. \"unix:///run/haproxy/admin.sock,web\", got {id:?}."),
            );
            return None;
        };
        let mut state = schema().block.empty_value();
        set(&mut state, "id", id);
        set(&mut state, "runtime_api", socket.trim());
        set(&mut state, "backend", backend.trim());
        if let Err(e) = validators::haproxy_name(&Value::from(backend.trim())) {
            diags.error("Invalid import ID", format!("The backend: {e}"));
            return None;
        }
        let Some(router) = Self::router(&state) else {
            diags.error(
                "Invalid import ID",
                format!("{socket:?} is not a Runtime API socket: expected unix:///path/to/admin.sock (an import reaches only a socket on this host)."),
            );
            return None;
        };
        let failure = match lifecycle::import(&site(&router), state, None, true).await {
            Ok(state) => return Some(state),
            Err(ImportError::Router(e)) => e.to_string(),
            Err(ImportError::NoLiveColour) => format!("No server of backend {backend:?} takes traffic (none named blue_N or green_N with a weight), so no colour is live. Create the resource instead: it adopts the backend."),
            Err(ImportError::NoRelease(live)) => format!("HAProxy holds no record of the release the {live} servers serve (the provider's process variables are lost on a reload). Create the resource instead: it adopts the backend."),
        };
        diags.error("Cannot import", failure);
        None
    }
}
