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
    /// Whether the file names a `secrets_file` (encrypted secrets need one).
    pub(super) secrets_file: bool,
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
        self.secrets_file = raw.secrets_file.is_some();
        if let Some(f) = &raw.secrets_file {
            let plain = !f.value.is_empty()
                && !f.value.starts_with('/')
                && f.value.split('/').all(|c| c != ".." && !c.is_empty());
            if !plain {
                self.err(
                    "S061",
                    Pos::from(f.referenced),
                    format!("secrets_file `{}` is not a plain path beside the file", f.value),
                    "name a file relative to services.yaml, inside its directory, without `..` (it travels with the file, in its repository)",
                );
            }
        }
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
            secrets_file: raw.secrets_file.map(|f| f.value),
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
        let (extras, vendored) = self.packaging(&id, pos, s, v, source.as_ref(), runtime);
        let job = self.job(&id, s, v);
        let replicas = self.replicas(&id, s, v);

        let machine = self.machine(&id, s, v);
        let scope = self.scope(&id, s, v);

        let (path, path_pos) = self.route(&id, service, pick(&v.path, &s.path), pos);

        let (port, publish) = self.ports(&id, s, v);
        let command = self.command(&id, s, v);

        let (env, secrets) =
            self.environment(&id, s, v, matches!(source, Some(Source::Package(_))));

        let keeps = self.keeps(&id, s, v);

        let health = self.gate(&id, pick(&v.health, &s.health), job);

        let public = pick(&v.public, &s.public).is_some_and(|p| p.value);

        let share_gpu = pick(&v.share_gpu, &s.share_gpu).is_some_and(|p| p.value);
        let assets = self.assets(&id, s, v, &env, &secrets);

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
