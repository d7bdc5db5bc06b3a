//! Checks on values a version carries that need more than their type: what
//! its environment may hold, and where its path may route.

use super::validate::Validator;
#[allow(unused_imports)]
use super::*;

/// The most one `NAME=value` may hold: Linux's limit for one string handed to
/// a new process (MAX_ARG_STRLEN, 128 KiB), less its terminating NUL.
pub const ENV_VALUE_MAX: usize = 128 * 1024 - 1;
/// The most one version's `env` may hold in all, well inside what a container's
/// start (command line and environment together) can take.
pub const ENV_TOTAL_MAX: usize = 1024 * 1024;

pub(super) fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('A'..='Z' | 'a'..='z' | '_'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Why `path` (starting with `/`) cannot be a service's route: segments the
/// gateway would resolve (`.`, `..`), the version separator `@`, characters a
/// URL would have to escape, and `/_db`, where database-scoped routes live.
pub(super) fn route_path(path: &str) -> Result<(), &'static str> {
    let normal = normalize_path(path);
    if normal.split('/').any(|seg| seg == "." || seg == "..") {
        return Err("has a `.` or `..` segment");
    }
    if !normal
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~'))
    {
        return Err("may hold only letters, digits, `-`, `_`, `.`, `~` and `/`");
    }
    if normal == "/_db" || normal.starts_with("/_db/") {
        return Err("is under `/_db`, which the gateway keeps for database-scoped services");
    }
    Ok(())
}

/// `//a//b/` -> `/a/b`: the form the gateway matches.
pub(super) fn normalize_path(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", segments.join("/"))
}

impl Validator {
    /// A version's `path` (else `/<service>`) in the form the gateway
    /// matches, and where it was written.
    pub(super) fn route(
        &mut self,
        id: &str,
        service: &str,
        path: Option<&Spanned<String>>,
        pos: Pos,
    ) -> (String, Pos) {
        match path {
            None => (format!("/{service}"), pos),
            Some(p) => {
                let at = Pos::from(p.referenced);
                if !p.value.starts_with('/') {
                    self.err(
                        "S031",
                        at,
                        format!("{id}: path `{}` does not start with `/`", p.value),
                        format!("write it as `/{}`", p.value),
                    );
                } else if let Err(why) = route_path(&p.value) {
                    self.err(
                        "S032",
                        at,
                        format!("{id}: path `{}` {why}", p.value),
                        "write a plain path of the service's own, like `/orders` or `/api/orders`",
                    );
                }
                (normalize_path(&p.value), at)
            }
        }
    }

    /// Two services never share a path, nor does one's path lie under
    /// another's: the gateway routes by longest prefix, so either would let one
    /// service take the other's requests (and its access rule).
    pub(super) fn paths(&mut self, services: &[Service]) {
        let all: Vec<(&str, &str, Pos)> = services
            .iter()
            .flat_map(|s| {
                s.versions
                    .iter()
                    .map(|v| (s.name.as_str(), v.path.as_str(), v.path_pos))
            })
            .collect();
        // Each path is compared with the earlier ones it can clash with (the
        // same path, those above it, those under it), found in a sorted map,
        // not with every earlier path: a thousand services are a thousand
        // lookups, not half a million comparisons.
        let mut by_path: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, (_, path, _)) in all.iter().enumerate() {
            by_path.entry(path).or_default().push(i);
        }
        let under = |a: &str, b: &str| {
            a == b || b == "/" || a.strip_prefix(b).is_some_and(|r| r.starts_with('/'))
        };
        let mut told = BTreeSet::new();
        for (i, (svc, path, at)) in all.iter().enumerate() {
            let above = path
                .match_indices('/')
                .map(|(k, _)| if k == 0 { "/" } else { &path[..k] });
            let below: Vec<usize> = match *path {
                "/" => (0..i).collect(),
                _ => {
                    let prefix = format!("{path}/");
                    by_path
                        .range(prefix.as_str()..)
                        .take_while(|(p, _)| p.starts_with(&prefix))
                        .flat_map(|(_, js)| js.iter().copied())
                        .collect()
                }
            };
            let mut near: Vec<usize> = std::iter::once(*path)
                .chain(above)
                .flat_map(|p| by_path.get(p).into_iter().flatten().copied())
                .chain(below)
                .filter(|&j| j < i)
                .collect();
            near.sort_unstable();
            near.dedup();
            for (other, theirs, first) in near.into_iter().map(|j| &all[j]) {
                if other == svc || told.contains(&(*svc, *other)) {
                    continue;
                }
                let clash = if path == theirs {
                    format!("is also the path of service `{other}` (at {first})")
                } else if under(path, theirs) {
                    format!("lies under `{theirs}`, the path of service `{other}` (at {first})")
                } else if under(theirs, path) {
                    format!("has `{theirs}`, the path of service `{other}` (at {first}), under it")
                } else {
                    continue;
                };
                told.insert((*svc, *other));
                self.err(
                    "S033",
                    *at,
                    format!("service `{svc}`: path `{path}` {clash}"),
                    "give each service a path of its own that no other service's path contains",
                );
            }
        }
    }

    /// `env` and `secrets`, the service's first and the version's on top: names
    /// checked, values that no process environment can hold refused where they
    /// stand (NUL, over [`ENV_VALUE_MAX`], over [`ENV_TOTAL_MAX`] together), and
    /// `PORT` refused for versions built from code (berth sets it to `port`).
    pub(super) fn environment(
        &mut self,
        id: &str,
        s: &RawService,
        v: &RawVersion,
        built: bool,
    ) -> (BTreeMap<String, String>, BTreeMap<String, SecretRef>) {
        let mut env = BTreeMap::new();
        let mut total = 0usize;
        let mut last = None;
        for map in [&s.env, &v.env].into_iter().flatten() {
            for (k, val) in map {
                self.env_name(id, "environment variable", k);
                self.contract_port(id, "environment variable", k, built);
                let at = Pos::from(val.referenced);
                if let Some(i) = val.value.find('\0') {
                    self.err("S034",
                        at,
                        format!("{id}: environment variable `{}` holds a NUL character (at character {}), which no process environment can carry", k.value, val.value[..i].chars().count() + 1),
                        "remove the NUL from the value",
                    );
                }
                let size = k.value.len() + 1 + val.value.len();
                if size > ENV_VALUE_MAX {
                    self.err("S035",
                        at,
                        format!("{id}: environment variable `{}` is {size} bytes; one variable may hold at most {ENV_VALUE_MAX} (the kernel's limit for one string)", k.value),
                        "pass large content as an asset (`assets:`) or in the package, not in `env`",
                    );
                }
                total += size + 1;
                last = Some(at);
                env.insert(k.value.clone(), val.value.clone());
            }
        }
        if total > ENV_TOTAL_MAX {
            self.err(
                "S036",
                last,
                format!(
                    "{id}: `env` holds {total} bytes in all; at most {ENV_TOTAL_MAX} are allowed"
                ),
                "pass large content as an asset (`assets:`) or in the package, not in `env`",
            );
        }
        let mut secrets = BTreeMap::new();
        for map in [&s.secrets, &v.secrets].into_iter().flatten() {
            for (k, sec) in map {
                self.env_name(id, "secret", k);
                self.contract_port(id, "secret", k, built);
                if env.contains_key(&k.value) {
                    self.err(
                        "S037",
                        Pos::from(k.referenced),
                        format!(
                            "{id}: `{}` is both an environment variable and a secret",
                            k.value
                        ),
                        "keep it in one of `env` or `secrets`",
                    );
                }
                if let Some(r) = self.secret(id, k, sec) {
                    secrets.insert(k.value.clone(), r);
                }
            }
        }
        (env, secrets)
    }

    /// Where one secret's value is read: exactly one of `from_env` (a name
    /// of berth's environment) or `encrypted` (a name in the file's
    /// `secrets_file`, which the file must then name).
    fn secret(&mut self, id: &str, k: &Spanned<String>, sec: &RawSecret) -> Option<SecretRef> {
        let (source, at) = match (&sec.from_env, &sec.encrypted) {
            (Some(var), None) => (SecretSource::Env(var.value.clone()), var),
            (None, Some(name)) => (SecretSource::Encrypted(name.value.clone()), name),
            (Some(var), Some(_)) => {
                self.err(
                    "S057",
                    Pos::from(var.referenced),
                    format!("{id}: secret `{}` has both `from_env` and `encrypted`", k.value),
                    "keep one: `from_env: VAR` reads berth's environment, `encrypted: NAME` the encrypted secrets file",
                );
                return None;
            }
            (None, None) => {
                self.err(
                    "S058",
                    Pos::from(k.referenced),
                    format!("{id}: secret `{}` says nowhere to read its value", k.value),
                    "write `{ from_env: VAR }` or `{ encrypted: NAME }`",
                );
                return None;
            }
        };
        let pos = Pos::from(at.referenced);
        match &source {
            SecretSource::Env(var) if !is_env_name(var) => self.err("S038",
                pos,
                format!("{id}: secret `{}` reads `{var}`, which is not an environment variable name", k.value),
                "name a variable of berth's environment: letters, digits and `_`, not starting with a digit",
            ),
            SecretSource::Encrypted(name) if !is_env_name(name) => self.err(
                "S059",
                pos,
                format!("{id}: secret `{}` reads `{name}`, which is not a name of the encrypted secrets file", k.value),
                "name a key of the secrets file: letters, digits and `_`, not starting with a digit",
            ),
            SecretSource::Encrypted(_) if !self.secrets_file => self.err(
                "S060",
                pos,
                format!("{id}: secret `{}` is `encrypted`, and the file names no `secrets_file`", k.value),
                "add `secrets_file: secrets.yaml` at the top: a file beside this one of NAME: <age-armored value>",
            ),
            _ => return Some(SecretRef { source, pos }),
        }
        None
    }

    /// A version built from code listens on `PORT`, which berth sets to its
    /// `port`: a second value could only disagree with it.
    fn contract_port(&mut self, id: &str, what: &str, k: &Spanned<String>, built: bool) {
        if built && k.value == "PORT" {
            self.err("S039",
                Pos::from(k.referenced),
                format!("{id}: {what} `PORT` is set by berth to the version's `port` for services built from code"),
                "remove it and set `port: N` instead; the service reads PORT and listens there",
            );
        }
    }

    pub(super) fn env_name(&mut self, id: &str, what: &str, k: &Spanned<String>) {
        if !is_env_name(&k.value) {
            self.err(
                "S040",
                Pos::from(k.referenced),
                format!("{id}: {what} name `{}` is not valid", k.value),
                "use letters, digits and `_`, not starting with a digit",
            );
        } else if k.value.starts_with("BERTH_") {
            self.err(
                "S041",
                Pos::from(k.referenced),
                format!("{id}: {what} `{}` uses the reserved prefix BERTH_", k.value),
                "rename it: berth sets BERTH_* variables itself",
            );
        }
    }

    /// The port a version listens on (8000 unless said) and the host port it
    /// is published on, if any.
    pub(super) fn ports(&mut self, id: &str, s: &RawService, v: &RawVersion) -> (u16, Option<u16>) {
        let port = match pick(&v.port, &s.port) {
            None => DEFAULT_PORT,
            Some(p) => {
                if p.value == 0 {
                    self.err(
                        "S013",
                        Pos::from(p.referenced),
                        format!("{id}: port 0 is not a port"),
                        "use the port the service listens on, 1 to 65535 (8000 by default)",
                    );
                }
                p.value
            }
        };
        let publish = pick(&v.publish, &s.publish).map(|p| {
            if p.value == 0 {
                self.err(
                    "S014",
                    Pos::from(p.referenced),
                    format!("{id}: publish port 0 is not a port"),
                    "use 1 to 65535, or drop `publish` to get a free port",
                );
            }
            p.value
        });

        (port, publish)
    }

    /// A version's `command`, when it has one: never empty.
    pub(super) fn command(
        &mut self,
        id: &str,
        s: &RawService,
        v: &RawVersion,
    ) -> Option<Vec<String>> {
        pick(&v.command, &s.command).map(|c| {
            if c.value.is_empty() {
                self.err(
                    "S015",
                    Pos::from(c.referenced),
                    format!("{id}: `command` is empty"),
                    "list the program and its arguments, or remove `command` to use the image's",
                );
            }
            c.value.clone()
        })
    }
}
