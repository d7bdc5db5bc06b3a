//! Parsing and validation: every problem of a file collected, then the raw file
//! turned into the validated [`Spec`].

#[allow(unused_imports)]
use super::*;

/// Parses and validates one file's text. `file` names it in diagnostics.
pub fn parse(file: &str, text: &str) -> Result<Spec, Diagnostics> {
    // YAML 1.2 booleans only: `database: y` or `env: { X: no }` are the text
    // they look like, never `true`/`false`.
    let options = serde_saphyr::options! { strict_booleans: true };
    let raw: RawFile =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| Diagnostics {
            file: file.to_string(),
            items: vec![syntax_diagnostic(&e, text)],
        })?;
    let mut v = Validator::default();
    let spec = v.file(raw);
    if v.items.is_empty() {
        Ok(spec)
    } else {
        v.items.sort_by_key(|d| d.pos);
        Err(Diagnostics {
            file: file.to_string(),
            items: v.items,
        })
    }
}

/// Just the project's name, from a file that may be wrong elsewhere: what
/// `status`, `logs` and `destroy` need. `None` when even that cannot be read.
pub fn project_name(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct ProjectOnly {
        project: String,
    }
    let p: ProjectOnly = serde_saphyr::from_str(text).ok()?;
    is_valid_name(&p.project).then_some(p.project)
}

/// Turns a parser error into a diagnostic that says what is wrong in words.
fn syntax_diagnostic(e: &serde_saphyr::Error, text: &str) -> Diagnostic {
    let pos = e.location().map(Pos::from);
    let mut msg = e.without_snippet().to_string();
    // The parser appends the position itself; we print it in front instead.
    if let Some(i) = msg.rfind(" at line ") {
        msg.truncate(i);
    }
    let (message, help) = super::explain::explain(&msg, text, pos);
    Diagnostic::new("S001", pos, message, help)
}

/// `[a-z][a-z0-9-]{0,31}`: names that prefix engine objects.
pub fn is_valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.len() <= 32
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
}

#[derive(Default)]
pub(super) struct Validator {
    pub(super) items: Vec<Diagnostic>,
    /// The file's engine, read before its services (replicas depend on it).
    pub(super) engine: EngineKind,
}

/// Service settings merged with one version's: the version's value wins.
pub(super) fn pick<'a, T>(version: &'a Option<T>, service: &'a Option<T>) -> Option<&'a T> {
    version.as_ref().or(service.as_ref())
}

impl Validator {
    pub(super) fn err(
        &mut self,
        code: &'static str,
        pos: impl Into<Option<Pos>>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.items
            .push(Diagnostic::new(code, pos.into(), message, help));
    }

    fn name(&mut self, what: &str, name: &Spanned<String>) {
        if !is_valid_name(&name.value) {
            self.err("S002",
                Pos::from(name.referenced),
                format!("{what} name `{}` is not valid", name.value),
                "use a lowercase letter, then up to 31 lowercase letters, digits or dashes ([a-z][a-z0-9-]{0,31})",
            );
        }
    }

    fn file(&mut self, raw: RawFile) -> Spec {
        self.name("project", &raw.project);
        let registry = self.engine_and_registry(&raw);
        let mut services = Vec::with_capacity(raw.services.len());
        // publish port -> (who, where), to report clashes at the second use.
        let mut published: BTreeMap<u16, String> = BTreeMap::new();
        for (name, svc) in &raw.services {
            self.name("service", name);
            if let Some(s) = self.service(&name.value, Pos::from(name.referenced), svc) {
                for v in &s.versions {
                    if let Some(p) = v.publish {
                        if let Some(first) = published.get(&p) {
                            self.err("S003",
                                v.pos,
                                format!("{}: host port {p} is already published by {first}", v.id()),
                                "give each service version its own `publish` port, or drop `publish` to get a free one",
                            );
                        } else {
                            published.insert(p, v.id());
                        }
                    }
                }
                services.push(s);
            }
        }
        self.paths(&services);
        self.engine_limits(&services, registry.as_deref());
        services.sort_by(|a, b| a.name.cmp(&b.name));
        Spec {
            project: raw.project.value,
            engine: self.engine,
            registry,
            services,
        }
    }

    fn service(&mut self, name: &str, pos: Pos, svc: &RawService) -> Option<Service> {
        let empty = RawVersion::default();
        // (version text, its position, its own settings)
        let mut declared: Vec<(&str, Pos, Option<&RawVersion>)> = Vec::new();
        match (&svc.version, &svc.versions) {
            (Some(v), Some(_)) => {
                self.err(
                    "S004",
                    Pos::from(v.referenced),
                    format!("service `{name}` has both `version` and `versions`"),
                    "use `version:` for a single version, or list every version under `versions:`",
                );
                return None;
            }
            (Some(v), None) => declared.push((&v.value, Pos::from(v.referenced), None)),
            (None, Some(vs)) => {
                if vs.is_empty() {
                    self.err(
                        "S005",
                        pos,
                        format!("service `{name}` declares no versions"),
                        "add at least one entry under `versions:`",
                    );
                    return None;
                }
                declared.extend(
                    vs.iter()
                        .map(|(k, v)| (k.value.as_str(), Pos::from(k.referenced), Some(v))),
                );
            }
            (None, None) => declared.push((UNVERSIONED, pos, None)),
        }

        let mut versions = Vec::new();
        for (text, vpos, raw) in declared {
            let parsed = match semver::Version::parse(text) {
                Ok(v) => v,
                Err(e) => {
                    self.err("S006",
                        vpos,
                        format!("service `{name}`: `{}` is not a semantic version ({e})", text),
                        "write versions as MAJOR.MINOR.PATCH, optionally with a pre-release: `1.2.0`, `2.0.0-rc.1`",
                    );
                    continue;
                }
            };
            if !parsed.build.is_empty() {
                self.err("S007",
                    vpos,
                    format!("service `{name}`: version `{}` carries build metadata", text),
                    "drop the `+...` part: build metadata does not order versions and cannot be part of a container name",
                );
                continue;
            }
            if let Some(v) = self.version(name, parsed, vpos, svc, raw.unwrap_or(&empty)) {
                versions.push(v);
            }
        }
        versions.sort_by(|a, b| a.version.cmp(&b.version));
        let highest = versions.last()?.version.clone();
        let active = match &svc.active {
            None => highest,
            Some(a) => match semver::Version::parse(&a.value) {
                Ok(v) if versions.iter().any(|x| x.version == v) => v,
                _ => {
                    let declared: Vec<String> =
                        versions.iter().map(|v| v.version.to_string()).collect();
                    self.err(
                        "S008",
                        Pos::from(a.referenced),
                        format!(
                            "service `{name}`: active version `{}` is not declared",
                            a.value
                        ),
                        format!(
                            "set `active` to one of the declared versions: {}",
                            declared.join(", ")
                        ),
                    );
                    return None;
                }
            },
        };
        Some(Service {
            name: name.to_string(),
            active,
            file_active: None,
            active_declared: svc.active.is_some(),
            versions,
        })
    }

    fn version(
        &mut self,
        service: &str,
        version: semver::Version,
        pos: Pos,
        s: &RawService,
        v: &RawVersion,
    ) -> Option<Version> {
        let id = format!("{service}@{version}");
        let before = self.items.len();

        let source = self.source(&id, pos, s, v);
        let runtime = self.runtime(&id, pos, s, v, source.as_ref());
        let extras = pick(&v.extras, &s.extras).cloned().unwrap_or_default();
        if !extras.is_empty() && matches!(source, Some(Source::Image(_))) {
            self.err(
                "S009",
                pos,
                format!("{id}: `extras` applies only to code packages"),
                "remove `extras`, or build from a `package`",
            );
        }

        let vendored = pick(&v.vendored, &s.vendored);
        if let Some(flag) = vendored.filter(|f| f.value) {
            let at = Pos::from(flag.referenced);
            match (&source, runtime) {
                (Some(Source::Image(_)), _) => self.err("S010",
                    at,
                    format!("{id}: `vendored` applies only to code packages"),
                    "remove `vendored`, or build from a `package`",
                ),
                (_, Some(r)) if r.python().is_some() => self.err("S011",
                    at,
                    format!("{id}: `vendored` applies to Node packages, and runtime `{}` is Python", r.name()),
                    "remove `vendored`: berth installs Python dependencies from wheels it resolves at plan time",
                ),
                _ => {}
            }
        }
        let vendored = vendored.is_some_and(|f| f.value);
        let job = pick(&v.job, &s.job);
        if let Some(flag) = job.filter(|f| f.value) {
            if pick(&v.publish, &s.publish).is_some() {
                self.err(
                    "S012",
                    Pos::from(flag.referenced),
                    format!(
                        "{id}: a job (`job: true`) serves nothing, so it cannot `publish` a port"
                    ),
                    "remove `publish`, or `job: true` to run it as a service",
                );
            }
        }
        let job = job.is_some_and(|f| f.value);
        let replicas = self.replicas(&id, s, v);

        let machine = self.machine(&id, s, v);
        let scope = self.scope(&id, s, v);

        let (path, path_pos) = self.route(&id, service, pick(&v.path, &s.path), pos);

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

        let command = pick(&v.command, &s.command).map(|c| {
            if c.value.is_empty() {
                self.err(
                    "S015",
                    Pos::from(c.referenced),
                    format!("{id}: `command` is empty"),
                    "list the program and its arguments, or remove `command` to use the image's",
                );
            }
            c.value.clone()
        });

        let (env, secrets) =
            self.environment(&id, s, v, matches!(source, Some(Source::Package(_))));

        let mut keeps = Vec::new();
        for k in pick(&v.keeps, &s.keeps).into_iter().flatten() {
            if !k.value.starts_with('/') || k.value.split('/').any(|c| c == "..") {
                self.err("S016",
                    Pos::from(k.referenced),
                    format!("{id}: keep path `{}` is not a plain absolute path", k.value),
                    "write the absolute path inside the container, without `..`, for example `/data`",
                );
            } else if keeps.contains(&k.value) {
                self.err(
                    "S017",
                    Pos::from(k.referenced),
                    format!("{id}: keep path `{}` is listed twice", k.value),
                    "list each path once",
                );
            } else if k.value.trim_end_matches('/').is_empty() {
                self.err(
                    "S018",
                    Pos::from(k.referenced),
                    format!("{id}: `/` cannot be kept"),
                    "keep a directory below `/`, for example `/data`",
                );
            } else {
                keeps.push(k.value.clone());
            }
        }

        let raw_health = pick(&v.health, &s.health);
        let mut health = self.health(&id, raw_health);
        if job {
            // A job's only gate is its exit: the check is not asked, and the
            // timeout is how long one run may take.
            health.check = HealthCheck::None;
            if raw_health.is_none_or(|h| h.timeout.is_none()) {
                health.timeout_ms = JOB_TIMEOUT_MS;
            }
        }

        let public = pick(&v.public, &s.public).is_some_and(|p| p.value);

        let share_gpu = pick(&v.share_gpu, &s.share_gpu).is_some_and(|p| p.value);
        let mut assets: Vec<Asset> = Vec::new();
        for a in pick(&v.assets, &s.assets)
            .map(|a| a.value.as_slice())
            .unwrap_or(&[])
        {
            self.env_name(&id, "asset variable", &a.env);
            if env.contains_key(&a.env.value)
                || secrets.contains_key(&a.env.value)
                || assets.iter().any(|b| b.env == a.env.value)
            {
                self.err(
                    "S019",
                    Pos::from(a.env.referenced),
                    format!(
                        "{id}: `{}` is set twice (env, secrets or another asset)",
                        a.env.value
                    ),
                    "give each asset its own variable name",
                );
            }
            let url = a.url.value.trim();
            let after_scheme = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            if after_scheme.is_none_or(|rest| rest.is_empty() || rest.starts_with('/')) {
                self.err(
                    "S020",
                    Pos::from(a.url.referenced),
                    format!("{id}: asset url `{url}` is not an http(s) URL"),
                    "write the full address, for example https://example.org/model.bin",
                );
            }
            let sha256 = a
                .sha256
                .as_ref()
                .map(|h| h.value.trim().to_ascii_lowercase());
            if let (Some(h), Some(raw)) = (&sha256, &a.sha256) {
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    self.err(
                        "S021",
                        Pos::from(raw.referenced),
                        format!(
                            "{id}: asset `{}`: sha256 `{}` is not 64 hex digits",
                            a.env.value, raw.value
                        ),
                        "write the SHA-256 of the file, as `sha256sum FILE` prints it",
                    );
                }
            }
            assets.push(Asset {
                env: a.env.value.clone(),
                url: url.to_string(),
                sha256,
                pos: Pos::from(a.env.referenced),
            });
        }

        if self.items.len() > before {
            return None;
        }
        Some(Version {
            service: service.to_string(),
            version,
            source: source?,
            command,
            runtime,
            extras,
            vendored,
            job,
            replicas,
            machine,
            scope,
            path,
            path_pos,
            port,
            publish,
            env,
            secrets,
            keeps,
            health,
            public,
            assets,
            share_gpu,
            pos,
        })
    }
}
