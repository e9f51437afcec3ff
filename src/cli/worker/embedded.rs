//! What `worker build` writes for componentize-py and componentize-js, compiled into this
//! binary so a build works from the binary alone: the WIT of the
//! `multiagents:worker` world (`workers-sdk/wit`), the Python SDK
//! (`workers-sdk/python/multiagents_worker`) and the JavaScript SDK
//! (`workers-sdk/js/src`). A test checks these lists
//! against the folders, so a file added there is not forgotten here.

/// `workers-sdk/wit`: (path under it, text).
pub(super) const WIT: &[(&str, &str)] = &[
    (
        "deps/config/store.wit",
        include_str!("../../../workers-sdk/wit/deps/config/store.wit"),
    ),
    (
        "deps/config/world.wit",
        include_str!("../../../workers-sdk/wit/deps/config/world.wit"),
    ),
    (
        "deps/keyvalue/atomic.wit",
        include_str!("../../../workers-sdk/wit/deps/keyvalue/atomic.wit"),
    ),
    (
        "deps/keyvalue/batch.wit",
        include_str!("../../../workers-sdk/wit/deps/keyvalue/batch.wit"),
    ),
    (
        "deps/keyvalue/store.wit",
        include_str!("../../../workers-sdk/wit/deps/keyvalue/store.wit"),
    ),
    (
        "deps/keyvalue/watch.wit",
        include_str!("../../../workers-sdk/wit/deps/keyvalue/watch.wit"),
    ),
    (
        "deps/keyvalue/world.wit",
        include_str!("../../../workers-sdk/wit/deps/keyvalue/world.wit"),
    ),
    (
        "deps/logging/logging.wit",
        include_str!("../../../workers-sdk/wit/deps/logging/logging.wit"),
    ),
    (
        "deps/logging/world.wit",
        include_str!("../../../workers-sdk/wit/deps/logging/world.wit"),
    ),
    ("worker.wit", include_str!("../../../workers-sdk/wit/worker.wit")),
];

/// `workers-sdk/python/multiagents_worker`: (file name, text).
pub(super) const PYTHON_SDK: &[(&str, &str)] = &[
    (
        "__init__.py",
        include_str!("../../../workers-sdk/python/multiagents_worker/__init__.py"),
    ),
    (
        "_component_host.py",
        include_str!("../../../workers-sdk/python/multiagents_worker/_component_host.py"),
    ),
    (
        "_host.py",
        include_str!("../../../workers-sdk/python/multiagents_worker/_host.py"),
    ),
    (
        "_registry.py",
        include_str!("../../../workers-sdk/python/multiagents_worker/_registry.py"),
    ),
    (
        "_typed.py",
        include_str!("../../../workers-sdk/python/multiagents_worker/_typed.py"),
    ),
    (
        "cbor.py",
        include_str!("../../../workers-sdk/python/multiagents_worker/cbor.py"),
    ),
    (
        "component.py",
        include_str!("../../../workers-sdk/python/multiagents_worker/component.py"),
    ),
    (
        "config.py",
        include_str!("../../../workers-sdk/python/multiagents_worker/config.py"),
    ),
    (
        "emit.py",
        include_str!("../../../workers-sdk/python/multiagents_worker/emit.py"),
    ),
    (
        "log.py",
        include_str!("../../../workers-sdk/python/multiagents_worker/log.py"),
    ),
    (
        "state.py",
        include_str!("../../../workers-sdk/python/multiagents_worker/state.py"),
    ),
    (
        "testing.py",
        include_str!("../../../workers-sdk/python/multiagents_worker/testing.py"),
    ),
];

/// `workers-sdk/js/src`: (file name, text).
pub(super) const JS_SDK: &[(&str, &str)] = &[
    ("cbor.js", include_str!("../../../workers-sdk/js/src/cbor.js")),
    (
        "component.js",
        include_str!("../../../workers-sdk/js/src/component.js"),
    ),
    ("host.js", include_str!("../../../workers-sdk/js/src/host.js")),
    ("index.js", include_str!("../../../workers-sdk/js/src/index.js")),
    (
        "testing.js",
        include_str!("../../../workers-sdk/js/src/testing.js"),
    ),
];

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every file of `dir` with extension `ext`, as paths under it.
    fn files(dir: &Path, ext: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for entry in std::fs::read_dir(&d).expect("read dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    todo.push(path);
                } else if path.extension().is_some_and(|e| e == ext) {
                    let rel = path.strip_prefix(dir).expect("under dir");
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn every_wit_and_sdk_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("workers-sdk");
        let wit: Vec<&str> = super::WIT.iter().map(|(p, _)| *p).collect();
        assert_eq!(files(&root.join("wit"), "wit"), wit);
        let sdk: Vec<&str> = super::PYTHON_SDK.iter().map(|(p, _)| *p).collect();
        assert_eq!(files(&root.join("python/multiagents_worker"), "py"), sdk);
        let js: Vec<&str> = super::JS_SDK.iter().map(|(p, _)| *p).collect();
        assert_eq!(files(&root.join("js/src"), "js"), js);
    }
}
