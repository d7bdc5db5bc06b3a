//! Code packages without Docker: deterministic archives, and every archive entry
//! berth must refuse. Malicious archives are made here with the tar crate.

use std::io::Write;
use std::path::Path;

use berth::build::package::{
    archive, read, read_archive, read_cached, read_dir, Limits, PackageError,
};
use berth::build::Entry;

fn archive_bytes(ctx: &berth::build::Context) -> Vec<u8> {
    let mut out = Vec::new();
    archive(ctx, &mut out).unwrap();
    out
}

/// An archive from (path, kind) entries; kinds: "file:TEXT", "dir", "symlink:TARGET",
/// "hardlink:TARGET", "fifo", "chardev".
fn tarball(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(0);
        let (k, arg) = kind.split_once(':').unwrap_or((kind, ""));
        // Write the raw name so `..` and absolute paths survive (the builder refuses them).
        let name = path.as_bytes();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        match k {
            "file" => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(arg.len() as u64);
                h.set_cksum();
                b.append(&h, arg.as_bytes()).unwrap();
                continue;
            }
            "dir" => h.set_entry_type(tar::EntryType::Directory),
            "symlink" => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_link_name(arg).unwrap();
            }
            "hardlink" => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_link_name(arg).unwrap();
            }
            "fifo" => h.set_entry_type(tar::EntryType::Fifo),
            "chardev" => h.set_entry_type(tar::EntryType::Char),
            other => panic!("unknown kind {other}"),
        }
        h.set_cksum();
        b.append(&h, std::io::empty()).unwrap();
    }
    b.into_inner().unwrap()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Reads an archive made of `entries`; Ok(sorted paths) or Err(the refusal's text).
fn check(entries: &[(&str, &str)], limits: Limits) -> Result<Vec<String>, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.tar.gz");
    std::fs::write(&path, gz(&tarball(entries))).unwrap();
    read_archive(&path, limits)
        .map(|p| p.context.paths().cloned().collect())
        .map_err(|e| {
            e.to_string()
                .replace(&path.display().to_string(), "p.tar.gz")
        })
}

fn refused(entries: &[(&str, &str)], expect: &str) {
    let got = check(entries, Limits::default()).expect_err("must be refused");
    assert!(got.contains(expect), "expected {expect:?} in:\n{got}");
}

#[test]
fn a_path_climbing_out_with_dotdot_is_refused() {
    refused(
        &[("ok.py", "file:x"), ("../evil.py", "file:x")],
        "entry `../evil.py` is refused: the path climbs out with `..`",
    );
}

#[test]
fn an_absolute_path_is_refused() {
    refused(
        &[("/etc/passwd", "file:x")],
        "entry `/etc/passwd` is refused: the path is absolute",
    );
}

#[test]
fn a_name_that_marks_a_deleted_file_in_a_layer_is_refused_wherever_it_is() {
    refused(
        &[("main.py", "file:x"), ("lib/.wh.util.py", "file:")],
        "entry `lib/.wh.util.py` is refused: a name starting with `.wh.` marks a deleted file inside an image layer",
    );
    refused(
        &[("pkg/main.py", "file:x"), ("pkg/.wh..wh..opq", "file:")],
        "entry `pkg/.wh..wh..opq` is refused",
    );
    refused(
        &[("main.py", "file:x"), (".wh.d/x.py", "file:x")],
        "entry `.wh.d/x.py` is refused",
    );
}

#[test]
fn a_symlink_out_of_the_package_is_refused_and_one_inside_is_kept() {
    refused(
        &[("a/link", "symlink:../../etc/passwd")],
        "it is a symlink to `../../etc/passwd`, outside the package",
    );
    refused(&[("link", "symlink:/etc/passwd")], "outside the package");
    let ok = check(
        &[
            ("a/real.txt", "file:x"),
            ("a/link", "symlink:real.txt"),
            ("b.txt", "file:y"),
        ],
        Limits::default(),
    )
    .unwrap();
    assert_eq!(ok, ["a/link", "a/real.txt", "b.txt"]);
}

#[test]
fn a_hardlink_out_of_the_package_is_refused_and_one_to_an_earlier_file_is_a_copy() {
    refused(&[("x", "hardlink:/etc/shadow")], "hardlink to");
    refused(
        &[("x", "hardlink:later.txt"), ("later.txt", "file:x")],
        "not an earlier file of the package",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.tar.gz");
    std::fs::write(
        &path,
        gz(&tarball(&[
            ("a.txt", "file:same"),
            ("b.txt", "hardlink:a.txt"),
        ])),
    )
    .unwrap();
    let p = read_archive(&path, Limits::default()).unwrap();
    assert_eq!(p.context.get("b.txt"), p.context.get("a.txt"));
}

#[test]
fn device_files_and_fifos_are_refused() {
    refused(
        &[("dev", "chardev")],
        "only files, directories and links are allowed",
    );
    refused(
        &[("pipe", "fifo")],
        "only files, directories and links are allowed",
    );
}

#[test]
fn an_oversized_entry_too_many_entries_and_a_bomb_are_refused() {
    let small = Limits {
        max_entry_bytes: 4,
        ..Limits::default()
    };
    let got = check(&[("big.bin", "file:12345")], small).unwrap_err();
    assert!(
        got.contains("entry `big.bin` is refused: it is 5 bytes, over the limit of 4"),
        "{got}"
    );
    let few = Limits {
        max_entries: 2,
        ..Limits::default()
    };
    let got = check(&[("a", "file:1"), ("b", "file:2"), ("c", "file:3")], few).unwrap_err();
    assert!(got.contains("it has more than 2 entries"), "{got}");
    // 64 MiB of zeros compress about a thousandfold.
    let zeros = "0".repeat(64 << 20);
    let got = check(&[("zeros", &format!("file:{zeros}"))], Limits::default()).unwrap_err();
    assert!(got.contains("expands more than 200x"), "{got}");
}

#[test]
fn a_multi_member_gzip_reads_as_one_archive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("multi.tar.gz");
    let tar = tarball(&[("a.py", "file:print(1)"), ("b.py", "file:print(2)")]);
    let (head, tail) = tar.split_at(512 + 512);
    let mut bytes = gz(head);
    bytes.extend(gz(tail));
    std::fs::write(&path, bytes).unwrap();
    let p = read_archive(&path, Limits::default()).unwrap();
    assert_eq!(
        p.context.paths().cloned().collect::<Vec<_>>(),
        ["a.py", "b.py"]
    );
}

#[test]
fn a_package_wrapped_in_one_directory_is_unwrapped_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.tar.gz");
    std::fs::write(
        &path,
        gz(&tarball(&[
            ("app-1.0/", "dir"),
            ("app-1.0/main.py", "file:x"),
            ("app-1.0/lib/u.py", "file:y"),
        ])),
    )
    .unwrap();
    let p = read_archive(&path, Limits::default()).unwrap();
    assert_eq!(p.stripped.as_deref(), Some("app-1.0"));
    assert_eq!(
        p.context.paths().cloned().collect::<Vec<_>>(),
        ["lib/u.py", "main.py"]
    );
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn packaging_a_directory_gives_the_same_bytes_for_the_same_content() {
    let src = tempfile::tempdir().unwrap();
    for (rel, text) in [
        ("main.py", "print('hi')\n"),
        ("lib/util.py", "X = 1\n"),
        (".env", "SECRET=1"),
        (".git/HEAD", "ref"),
        ("__pycache__/x.pyc", "b"),
        ("node_modules/m/i.js", "1"),
        ("notes.log", "debug"),
        (".berthignore", "*.log\n"),
    ] {
        write(src.path(), rel, text);
    }
    let first = archive_bytes(&read_dir(src.path(), Limits::default()).unwrap());
    // Touch every file (new mtimes), and write them again in another order.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for (rel, text) in [("lib/util.py", "X = 1\n"), ("main.py", "print('hi')\n")] {
        write(src.path(), rel, text);
    }
    let second = archive_bytes(&read_dir(src.path(), Limits::default()).unwrap());
    assert_eq!(first, second, "same content, same bytes");
    let ctx = read_dir(src.path(), Limits::default()).unwrap();
    assert_eq!(
        ctx.paths().cloned().collect::<Vec<_>>(),
        ["lib/util.py", "main.py"],
        "excluded: .env .git __pycache__ node_modules and .berthignore's *.log"
    );

    // The archive reads back to the same content.
    let out = tempfile::tempdir().unwrap();
    let tgz = out.path().join("p.tar.gz");
    std::fs::write(&tgz, &first).unwrap();
    let back = read(&tgz, Limits::default()).unwrap().context;
    assert_eq!(
        back.paths().collect::<Vec<_>>(),
        ctx.paths().collect::<Vec<_>>()
    );
    assert_eq!(back.hash(), ctx.hash());

    // One changed byte changes the hash.
    write(src.path(), "main.py", "print('ho')\n");
    assert_ne!(
        read_dir(src.path(), Limits::default()).unwrap().hash(),
        ctx.hash()
    );
}

#[test]
fn a_directory_symlink_pointing_outside_is_refused() {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "main.py", "x");
    std::os::unix::fs::symlink("/etc/passwd", src.path().join("passwd")).unwrap();
    let err = read_dir(src.path(), Limits::default()).unwrap_err();
    assert!(
        matches!(&err, PackageError::EntryRefuse { entry, .. } if entry == "passwd"),
        "{err}"
    );
}

#[test]
fn modes_are_normalized_to_executable_or_not() {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "run.sh", "#!/bin/sh");
    write(src.path(), "data.txt", "x");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        src.path().join("run.sh"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    std::fs::set_permissions(
        src.path().join("data.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let ctx = read_dir(src.path(), Limits::default()).unwrap();
    assert!(matches!(
        ctx.get("run.sh"),
        Some(Entry::File { mode: 0o755, .. })
    ));
    assert!(matches!(
        ctx.get("data.txt"),
        Some(Entry::File { mode: 0o644, .. })
    ));
}

#[test]
fn a_symlink_chain_that_escapes_through_another_link_is_refused() {
    // Each link alone stays inside; followed as the container will, `d/b`
    // goes to `d/a/..` = `../..`, outside.
    refused(
        &[
            ("x.txt", "file:x"),
            ("d/a", "symlink:.."),
            ("d/b", "symlink:a/.."),
        ],
        "entry `d/b` is refused: it is a symlink to `a/..`, which resolves outside the package",
    );
    refused(
        &[
            ("x.txt", "file:x"),
            ("l1", "symlink:l2"),
            ("l2", "symlink:l1"),
        ],
        "resolves outside the package",
    );
    let ok = check(
        &[
            ("sub/x.txt", "file:x"),
            ("d/a", "symlink:../sub"),
            ("d/b", "symlink:a/x.txt"),
        ],
        Limits::default(),
    );
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn an_entry_below_a_symlinked_directory_is_refused() {
    refused(
        &[
            ("sub/y.txt", "file:y"),
            ("s", "symlink:sub"),
            ("s/x.txt", "file:x"),
        ],
        "entry `s/x.txt` is refused: it lies below the symlink `s`",
    );
}

/// A valid package's gzip bytes with `damage` applied.
fn damaged(damage: impl Fn(&mut Vec<u8>)) -> String {
    let mut bytes = gz(&tarball(&[("x.txt", "file:hello")]));
    damage(&mut bytes);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.tar.gz");
    std::fs::write(&path, bytes).unwrap();
    match read_archive(&path, Limits::default()) {
        Ok(_) => "accepted".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_gzip_member_with_a_bad_crc_a_bad_size_or_a_cut_trailer_is_refused() {
    let n = |b: &Vec<u8>| b.len();
    for (what, got) in [
        (
            "bad crc",
            damaged(|b| {
                let i = n(b) - 8;
                b[i] ^= 0xff;
            }),
        ),
        (
            "bad size",
            damaged(|b| {
                let i = n(b) - 4;
                b[i] ^= 0x01;
            }),
        ),
        (
            "cut trailer",
            damaged(|b| {
                let keep = n(b) - 5;
                b.truncate(keep);
            }),
        ),
    ] {
        assert!(got.contains("gzip stream is damaged"), "{what}: {got}");
    }
    assert_eq!(damaged(|_| {}), "accepted");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn read_bytes(bytes: &[u8]) -> Result<berth::build::package::Package, PackageError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.tar.gz");
        std::fs::write(&path, bytes).unwrap();
        read_archive(&path, Limits::default())
    }

    /// An entry: a path from a few names (with `..` and `.` among them), and a
    /// file or a link to such a path.
    fn entry() -> impl Strategy<Value = (String, String)> {
        let name = prop::sample::select(vec!["a", "b", "s", "..", ".", "x.txt"]);
        let path = prop::collection::vec(name.clone(), 1..4).prop_map(|p| p.join("/"));
        let target = prop::collection::vec(name, 1..4).prop_map(|p| p.join("/"));
        (
            path,
            prop_oneof![
                Just("file:x".to_string()),
                target.prop_map(|t| format!("symlink:{t}"))
            ],
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic_the_package_reader(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            let _ = read_bytes(&bytes);
            let _ = read_bytes(&gz(&bytes));
        }

        /// What the reader accepts, laid out in a real directory, never resolves
        /// outside it: the kernel is the oracle.
        #[test]
        fn an_accepted_package_never_resolves_outside_itself(entries in prop::collection::vec(entry(), 1..6)) {
            let refs: Vec<(&str, &str)> = entries.iter().map(|(p, k)| (p.as_str(), k.as_str())).collect();
            let Ok(pkg) = read_bytes(&gz(&tarball(&refs))) else { return Ok(()) };
            let root = tempfile::tempdir().unwrap();
            let base = root.path().join("pkg");
            std::fs::create_dir_all(&base).unwrap();
            let base = base.canonicalize().unwrap();
            for p in pkg.context.paths() {
                let at = base.join(p);
                std::fs::create_dir_all(at.parent().unwrap()).unwrap();
                match pkg.context.get(p).unwrap() {
                    Entry::File { .. } => std::fs::write(&at, "x").unwrap(),
                    Entry::Symlink { target } => std::os::unix::fs::symlink(target, &at).unwrap(),
                }
            }
            for p in pkg.context.paths() {
                if let Ok(real) = base.join(p).canonicalize() {
                    prop_assert!(real.starts_with(&base), "{p} resolves to {}", real.display());
                }
            }
        }
    }
}

#[test]
fn an_entry_below_a_file_is_refused() {
    // Found by the property test: a file `a` and a file `a/x.txt` were accepted,
    // and the engine's build failed on them.
    refused(
        &[("a", "file:x"), ("a/x.txt", "file:y")],
        "entry `a/x.txt` is refused: it lies below the file `a`",
    );
}

#[test]
fn a_link_to_the_wrapper_directory_is_refused_once_the_wrapper_is_unwrapped() {
    // Found by the property test: `a/a -> ..` points at the archive's root, but
    // the single top-level `a/` is unwrapped, and then it climbs out.
    refused(
        &[("a/x.txt", "file:x"), ("a/a", "symlink:..")],
        "entry `a/a` is refused: it is a symlink to `..`",
    );
}

/// Reads the context's tarball back as (path, kind, bytes), in path order.
fn sent(ctx: &berth::build::Context) -> std::io::Result<Vec<(String, String, Vec<u8>)>> {
    use std::io::Read;
    let tar = ctx.tar()?;
    let mut out = Vec::new();
    let mut a = tar::Archive::new(tar.as_slice());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().display().to_string();
        let kind = format!("{:?}", e.header().entry_type());
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        if let Some(l) = e.link_name().unwrap() {
            bytes = l.display().to_string().into_bytes();
        }
        out.push((path, kind, bytes));
    }
    out.sort();
    Ok(out)
}

#[test]
fn a_package_is_hashed_as_it_streams_and_its_files_are_read_again_only_when_sent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.tar.gz");
    // Incompressible enough not to look like a bomb.
    let mut x = 7u64;
    let big: String = (0..3 << 20)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'a' + (x >> 60) as u8)
        })
        .collect();
    std::fs::write(
        &path,
        gz(&tarball(&[
            ("app/requirements.txt", "file:flask\n"),
            ("app/data.bin", &format!("file:{big}")),
            ("app/copy.bin", "hardlink:app/data.bin"),
            ("app/hello.py", "file:print(1)\n"),
        ])),
    )
    .unwrap();
    let p = read_archive(&path, Limits::default()).unwrap();
    let ctx = &p.context;
    // Held in memory: only what berth reads itself.
    assert_eq!(ctx.inline("requirements.txt"), Some(&b"flask\n"[..]));
    assert!(ctx.inline("data.bin").is_none() && ctx.inline("hello.py").is_none());
    assert_eq!(ctx.size(), 2 * big.len() as u64 + 15);

    // The tarball carries the content, the hardlink as a link to the first copy.
    let files = sent(ctx).unwrap();
    let names: Vec<_> = files.iter().map(|(p, k, _)| format!("{p} {k}")).collect();
    assert_eq!(
        names,
        [
            "copy.bin Regular",
            "data.bin Link",
            "hello.py Regular",
            "requirements.txt Regular"
        ]
    );
    assert_eq!(files[0].2, big.as_bytes());
    assert_eq!(files[1].2, b"copy.bin");

    // Read back, the sent tarball is the same content.
    let again = dir.path().join("again.tar.gz");
    std::fs::write(&again, gz(&ctx.tar().unwrap())).unwrap();
    assert_eq!(
        read_archive(&again, Limits::default())
            .unwrap()
            .context
            .hash(),
        ctx.hash()
    );

    // An archive changed after it was hashed is not sent as if it were the same.
    std::fs::write(
        &path,
        gz(&tarball(&[(
            "app/data.bin",
            &format!("file:{}", big.replace('a', "b")),
        )])),
    )
    .unwrap();
    let err = ctx.tar().expect_err("the archive changed");
    assert!(
        err.to_string().contains("changed since it was read"),
        "{err}"
    );
}

#[test]
fn a_directory_file_changed_after_it_was_hashed_fails_the_send() {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "hello.py", "print('hi')\n");
    write(src.path(), "pyproject.toml", "[project]\nname = 'x'\n");
    let ctx = read_dir(src.path(), Limits::default()).unwrap();
    assert!(ctx.inline("pyproject.toml").is_some());
    assert!(ctx.inline("hello.py").is_none(), "read when sent");
    assert_eq!(sent(&ctx).unwrap()[0].2, b"print('hi')\n");
    write(src.path(), "hello.py", "print('ho')\n");
    let err = ctx.tar().expect_err("hello.py changed");
    assert!(
        err.to_string()
            .contains("hello.py changed since it was read"),
        "{err}"
    );
}

#[test]
fn an_unchanged_package_is_known_by_its_stamp_and_a_changed_one_is_read_again() {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.tar.gz");
    std::fs::write(&path, gz(&tarball(&[("hello.py", "file:print(1)\n")]))).unwrap();
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "hello.py", "print(1)\n");
    // A file as fresh as this one could change again within the clock's tick: not
    // cached until it has settled.
    let read = |p: &Path| read_cached(p, Limits::default(), Some(state.path()), false).unwrap();
    assert!(!read(&path).cached && !read(&path).cached);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    for p in [path.as_path(), src.path()] {
        let first = read(p);
        let second = read(p);
        assert!(!first.cached && second.cached, "{}", p.display());
        assert_eq!(first.context.hash(), second.context.hash());
    }

    // Same size, same mtime, new content: the inode's change time gives it away.
    let old = std::fs::metadata(&path).unwrap().modified().unwrap();
    let before = read(&path).context.hash();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all(&gz(&tarball(&[("hello.py", "file:print(2)\n")])))
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let after = read(&path);
    assert!(!after.cached);
    assert_ne!(after.context.hash(), before);
}
