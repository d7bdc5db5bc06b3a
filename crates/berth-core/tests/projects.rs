//! The projects file of `watch --projects` and one gateway's routes over
//! several projects, pure.

use berth_core::projects::{parse_projects, ProjectEntry, ProjectSource};
use berth_core::route::{merge, Route, RouteTable};

/// The file's projects, or every problem (each expected piece must appear).
fn check(text: &str, expect: Result<Vec<ProjectEntry>, &[&str]>) {
    match (parse_projects("projects.yaml", text), expect) {
        (Ok(got), Ok(want)) => assert_eq!(got, want),
        (Err(d), Err(pieces)) => {
            let shown = d.to_string();
            for p in pieces {
                assert!(shown.contains(p), "expected `{p}` in:\n{shown}");
            }
        }
        (got, _) => panic!("unexpected: {got:?}"),
    }
}

#[test]
fn a_projects_file_lists_files_and_repositories_in_its_order_with_git_defaults() {
    check(
        "projects:\n  - name: shop\n    file: shop/services.yaml\n  - name: billing\n    git: https://git.example/billing.git\n    webhook_secret: billing.secret\n  - name: books\n    git: /srv/mono.git\n    ref: prod\n    path: books/services.yaml\n",
        Ok(vec![
            ProjectEntry {
                name: "shop".into(),
                source: ProjectSource::File("shop/services.yaml".into()),
                webhook_secret: None,
            },
            ProjectEntry {
                name: "billing".into(),
                source: ProjectSource::Git {
                    url: "https://git.example/billing.git".into(),
                    reference: "main".into(),
                    path: "services.yaml".into(),
                },
                webhook_secret: Some("billing.secret".into()),
            },
            ProjectEntry {
                name: "books".into(),
                source: ProjectSource::Git {
                    url: "/srv/mono.git".into(),
                    reference: "prod".into(),
                    path: "books/services.yaml".into(),
                },
                webhook_secret: None,
            },
        ]),
    );
}

#[test]
fn a_bad_projects_file_reports_every_problem_where_it_is() {
    check(
        "projects:\n  - name: Shop\n    file: a.yaml\n  - name: dup\n    file: b.yaml\n    ref: main\n  - name: dup\n    file: c.yaml\n    git: d\n  - name: none\n",
        Err(&[
            "projects.yaml:2:",
            "project name `Shop` is not valid [W003]",
            "projects.yaml:6:",
            "`ref` is for a project followed from `git` [W005]",
            "projects.yaml:7:",
            "project `dup` is listed twice [W004]",
            "project `dup` names both `file` and `git` [W006]",
            "project `none` names neither `file` nor `git` [W006]",
        ]),
    );
    check("projects: []\n", Err(&["lists no project [W002]"]));
    check(
        "projects:\n  - name: a\n    files: x\n",
        Err(&["projects.yaml:3:", "unknown field", "[W001]"]),
    );
}

fn table(project: &str, prefixes: &[&str]) -> RouteTable {
    let mut t = RouteTable::default();
    for p in prefixes {
        t.routes.insert(
            p.to_string(),
            Route {
                port: 1,
                backends: vec![],
                direct: None,
                project: project.into(),
                service: "s".into(),
                version: "1.0.0".into(),
                public: true,
            },
        );
    }
    t
}

#[test]
fn a_project_listed_later_never_takes_a_path_at_under_or_above_one_listed_before() {
    let shop = table("shop", &["/api", "/api@1.0.0", "/shop"]);
    let books = table("books", &["/api", "/api/v2", "/books", "/shopping"]);
    let root = table("root", &["/"]);
    let (merged, conflicts) = merge(&[("shop", &shop), ("books", &books), ("root", &root)]);
    let kept: Vec<(&str, &str)> = merged
        .routes
        .iter()
        .map(|(p, r)| (p.as_str(), r.project.as_str()))
        .collect();
    assert_eq!(
        kept,
        [
            ("/api", "shop"),
            ("/api@1.0.0", "shop"),
            ("/books", "books"),
            ("/shop", "shop"),
            ("/shopping", "books"),
        ]
    );
    let left: Vec<(&str, &str, &str)> = conflicts
        .iter()
        .map(|c| (c.project.as_str(), c.prefix.as_str(), c.holder.as_str()))
        .collect();
    assert_eq!(
        left,
        [
            ("books", "/api", "shop"),
            ("books", "/api/v2", "shop"),
            ("root", "/", "shop"),
        ]
    );
}
