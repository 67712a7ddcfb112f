// Package validate checks examples/kubernetes against the Kubernetes API:
// each document is decoded strictly (unknown or misspelt fields and wrong
// types fail) into k8s.io/api's types, the API's own Go definitions
// (pinned in go.mod), and what the Deployment refers to must exist. It is
// a module of its own so that vpnfwd's module does not carry Kubernetes'.
// (kubeconform needs its JSON schemas from GitHub, which CI cannot reach.)
package validate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/provider/all"
)

func documents(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, d := range strings.Split(string(b), "\n---\n") {
		if strings.TrimSpace(d) != "" {
			docs = append(docs, d)
		}
	}
	return docs
}

func TestManifests(t *testing.T) {
	files, _ := filepath.Glob("../*.yaml")
	if len(files) == 0 {
		t.Fatal("no manifests in examples/kubernetes")
	}
	envs := map[string]bool{"VPNFWD_CONFIG": true, "VPNFWD_STATE_DIR": true, "VPNFWD_LOG_LEVEL": true}
	for _, o := range config.AllOptions(all.Providers) {
		envs[config.EnvName(o.Flag)] = true
	}
	for _, f := range files {
		secrets, claims := map[string]map[string]bool{}, map[string]bool{}
		var deployments []appsv1.Deployment
		for i, doc := range documents(t, f) {
			var meta struct{ APIVersion, Kind string }
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s document %d: %v", f, i+1, err)
			}
			var obj any
			switch meta.APIVersion + " " + meta.Kind {
			case "v1 Secret":
				obj = &corev1.Secret{}
			case "v1 PersistentVolumeClaim":
				obj = &corev1.PersistentVolumeClaim{}
			case "v1 Service":
				obj = &corev1.Service{}
			case "apps/v1 Deployment":
				obj = &appsv1.Deployment{}
			case "v1 Pod":
				obj = &corev1.Pod{}
			default:
				t.Errorf("%s document %d: %s %s is not checked here: add it", f, i+1, meta.APIVersion, meta.Kind)
				continue
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Errorf("%s document %d (%s): %v", f, i+1, meta.Kind, err)
				continue
			}
			switch o := obj.(type) {
			case *corev1.Secret:
				keys := map[string]bool{}
				for k := range o.StringData {
					keys[k] = true
				}
				for k := range o.Data {
					keys[k] = true
				}
				secrets[o.Name] = keys
			case *corev1.PersistentVolumeClaim:
				claims[o.Name] = true
			case *appsv1.Deployment:
				deployments = append(deployments, *o)
			}
		}
		for _, d := range deployments {
			checkDeployment(t, f, d, secrets, claims, envs)
		}
	}
}

// checkDeployment: what the pod refers to exists, and vpnfwd's container
// is set up as tun mode needs.
func checkDeployment(t *testing.T, f string, d appsv1.Deployment, secrets map[string]map[string]bool, claims map[string]bool, envs map[string]bool) {
	where := fmt.Sprintf("%s: Deployment %s", f, d.Name)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("%s: one replica (one VPN session per account and port)", where)
	}
	sel := d.Spec.Selector.MatchLabels
	for k, v := range sel {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("%s: the selector %s=%s does not match the pod's labels", where, k, v)
		}
	}
	spec := d.Spec.Template.Spec
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
		if v.Secret != nil && secrets[v.Secret.SecretName] == nil {
			t.Errorf("%s: volume %s names Secret %s, which the file does not describe", where, v.Name, v.Secret.SecretName)
		}
		if v.PersistentVolumeClaim != nil && !claims[v.PersistentVolumeClaim.ClaimName] {
			t.Errorf("%s: volume %s names claim %s, which the file does not make", where, v.Name, v.PersistentVolumeClaim.ClaimName)
		}
	}
	names := map[string]bool{}
	var vpnfwd *corev1.Container
	for i, c := range spec.Containers {
		if names[c.Name] {
			t.Errorf("%s: two containers named %s", where, c.Name)
		}
		names[c.Name] = true
		if c.Image == "" {
			t.Errorf("%s: container %s has no image", where, c.Name)
		}
		for _, m := range c.VolumeMounts {
			if _, ok := volumes[m.Name]; !ok {
				t.Errorf("%s: container %s mounts %s, which is no volume", where, c.Name, m.Name)
			}
		}
		if c.Name == "vpnfwd" {
			vpnfwd = &spec.Containers[i]
		}
	}
	if vpnfwd == nil {
		t.Fatalf("%s: no container named vpnfwd", where)
	}
	env := map[string]string{}
	for _, e := range vpnfwd.Env {
		if !envs[e.Name] {
			t.Errorf("%s: %s is not a vpnfwd setting", where, e.Name)
		}
		env[e.Name] = e.Value
	}
	mounted := map[string]string{}
	for _, m := range vpnfwd.VolumeMounts {
		mounted[m.MountPath] = m.Name
	}
	for _, k := range []string{"VPNFWD_WG_CONFIG", "VPNFWD_QBITTORRENT_PASSWORD_FILE"} {
		p := env[k]
		if p == "" {
			continue
		}
		v, ok := volumes[mounted[filepath.Dir(p)]]
		if !ok || v.Secret == nil || !secrets[v.Secret.SecretName][filepath.Base(p)] {
			t.Errorf("%s: %s=%s is not a key of a mounted Secret", where, k, p)
		}
	}
	if env["VPNFWD_TUN"] != "" {
		caps := vpnfwd.SecurityContext
		if caps == nil || caps.Capabilities == nil || len(caps.Capabilities.Add) != 1 || caps.Capabilities.Add[0] != "NET_ADMIN" {
			t.Errorf("%s: tun mode needs NET_ADMIN (and nothing more)", where)
		}
		if v, ok := volumes[mounted["/dev/net/tun"]]; !ok || v.HostPath == nil || v.HostPath.Path != "/dev/net/tun" {
			t.Errorf("%s: tun mode needs /dev/net/tun", where)
		}
	}
	if v, ok := volumes[mounted["/var/lib/vpnfwd"]]; !ok || v.PersistentVolumeClaim == nil {
		t.Errorf("%s: vpnfwd's state (the last port) should be on a persistent volume", where)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": vpnfwd.ReadinessProbe, "liveness": vpnfwd.LivenessProbe} {
		if p == nil || p.Exec == nil || len(p.Exec.Command) == 0 || p.Exec.Command[0] != "/vpnfwd" {
			t.Errorf("%s: the %s probe should run /vpnfwd (the image has no shell)", where, name)
		}
	}
}
