//! The deployment files parse, and say what the server needs: every YAML
//! file in deploy/ (all documents), the config files against the real
//! configuration (the ConfigMap's quarry.toml and deploy/quarry.toml),
//! gRPC probes on the health service, a volume claim for the data
//! directory, resource requests, and a non-root image.

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

/// deploy/ of the checkout under test: cargo sets CARGO_MANIFEST_DIR when
/// it runs the test (the compile-time value may name another clone that
/// shared the build directory).
fn deploy() -> PathBuf {
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    Path::new(&root).join("deploy")
}

fn files(ext: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walk(&deploy())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| ext.iter().any(|x| e == *x)))
        .collect();
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn docs() -> Vec<(PathBuf, Yaml)> {
    files(&["yaml", "yml"])
        .into_iter()
        .flat_map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let docs =
                YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(!docs.is_empty(), "{} is empty", p.display());
            docs.into_iter().map(move |d| (p.clone(), d))
        })
        .collect()
}

fn kind<'a>(docs: &'a [(PathBuf, Yaml)], kind: &str) -> &'a Yaml {
    &docs
        .iter()
        .find(|(_, d)| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} in deploy/"))
        .1
}

#[test]
fn every_yaml_and_toml_file_parses_and_configs_are_valid() {
    let docs = docs();
    assert!(docs.len() >= 5, "{} YAML documents", docs.len());
    for p in files(&["toml"]) {
        let text = std::fs::read_to_string(&p).unwrap();
        text.parse::<toml::Table>()
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        if p.file_name().is_some_and(|n| n == "quarry.toml") {
            quarry::config::check_file_text(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
    }
    let config = kind(&docs, "ConfigMap")["data"]["quarry.toml"]
        .as_str()
        .expect("the ConfigMap holds quarry.toml");
    quarry::config::check_file_text(config).unwrap();
    assert!(
        config.contains("keys_file"),
        "the cluster config must use keys"
    );
}

#[test]
fn the_statefulset_probes_health_and_keeps_its_data() {
    let docs = docs();
    let sts = kind(&docs, "StatefulSet");
    let pod = &sts["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert_eq!(
            container[probe]["grpc"]["port"].as_i64(),
            Some(50051),
            "{probe}"
        );
    }
    assert!(container["resources"]["requests"]["memory"]
        .as_str()
        .is_some());
    assert!(container["resources"]["requests"]["cpu"].as_str().is_some());
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(sts["spec"]["replicas"].as_i64(), Some(1));
    let claim = &sts["spec"]["volumeClaimTemplates"][0];
    assert_eq!(claim["metadata"]["name"].as_str(), Some("data"));
    assert!(container["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .any(|m| m["name"].as_str() == Some("data") && m["mountPath"].as_str() == Some("/data")));
    let service = kind(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["port"].as_i64(), Some(50051));
    assert!(kind(&docs, "Secret")["stringData"]["keys.toml"]
        .as_str()
        .is_some());

    let dockerfile = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    assert!(dockerfile.matches("FROM ").count() >= 2, "multi-stage");
    assert!(dockerfile.contains("\nUSER quarry"), "non-root");
    let compose = &docs
        .iter()
        .find(|(p, _)| p.ends_with("compose.yaml"))
        .unwrap()
        .1;
    assert!(compose["services"]["quarry"]["volumes"].as_vec().is_some());
}

#[test]
fn the_scale_out_manifests_run_stateless_quarry_nodes_on_a_qdrant_cluster() {
    let dir = deploy().join("scale-out");
    let load = |name: &str| {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let of = |docs: &[Yaml], kind: &str| -> Yaml {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(kind))
            .unwrap_or_else(|| panic!("no {kind}"))
            .clone()
    };
    let env = |container: &Yaml, name: &str| -> Option<Yaml> {
        container["env"]
            .as_vec()?
            .iter()
            .find(|e| e["name"].as_str() == Some(name))
            .cloned()
    };

    // Qdrant: three pods in cluster mode, the first starting it.
    let qdrant = load("qdrant.yaml");
    let sts = of(&qdrant, "StatefulSet");
    assert_eq!(sts["spec"]["replicas"].as_i64(), Some(3));
    let node = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        env(node, "QDRANT__CLUSTER__ENABLED").unwrap()["value"].as_str(),
        Some("true")
    );
    let script = node["args"][0].as_str().unwrap();
    assert!(
        script.contains("--uri") && script.contains("--bootstrap"),
        "{script}"
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"].as_str(),
        Some("storage")
    );
    assert_eq!(
        of(&qdrant, "Service")["spec"]["clusterIP"].as_str(),
        Some("None")
    );

    // Quarry: a Deployment (no volume claim), probes on /readyz and
    // /healthz, an autoscaler on it, and a configuration that checks.
    let quarry = load("quarry.yaml");
    let deployment = of(&quarry, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert!(deployment["spec"]["volumeClaimTemplates"].is_badvalue());
    assert!(
        env(container, "QUARRY_QDRANT_API_KEY").unwrap()["valueFrom"]["secretKeyRef"]
            .as_hash()
            .is_some()
    );
    let hpa = of(&quarry, "HorizontalPodAutoscaler");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["kind"].as_str(),
        Some("Deployment")
    );
    assert!(hpa["spec"]["minReplicas"].as_i64() >= Some(2));
    let config = of(&quarry, "ConfigMap")["data"]["quarry.toml"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(config.contains(r#"backend = "qdrant""#));
    quarry::config::check_file_text(&config).unwrap();

    // Compose: three Qdrant nodes, two Quarry nodes on all three.
    let compose = &load("compose.yaml")[0]["services"];
    let services: Vec<&str> = compose
        .as_hash()
        .unwrap()
        .keys()
        .filter_map(|k| k.as_str())
        .collect();
    for s in ["qdrant-0", "qdrant-1", "qdrant-2", "quarry-a", "quarry-b"] {
        assert!(services.contains(&s), "{s} in {services:?}");
    }
    let text = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    assert!(text.contains("QUARRY_BACKEND: qdrant"));
    assert!(text.contains("http://qdrant-0:6334,http://qdrant-1:6334,http://qdrant-2:6334"));
    assert_eq!(text.matches("--bootstrap").count(), 2);
}
