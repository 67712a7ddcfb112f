package provider

import (
	"strings"
	"testing"
)

func TestList(t *testing.T) {
	a := Info{Name: "a", Options: []Option{{Key: "gateway", Flag: "gateway"}}}
	b := Info{Name: "b", Options: []Option{{Key: "gateway", Flag: "gateway"}}}
	l, err := NewList(b, a)
	if err != nil || l.Names() != "a, b" {
		t.Fatalf("%v %v", l.Names(), err)
	}
	if i, ok := l.Lookup("B"); !ok || i.Name != "b" {
		t.Errorf("Lookup(B): %v %v", i.Name, ok)
	}
	if _, ok := l.Lookup("c"); ok {
		t.Error("Lookup(c) found something")
	}
	if _, err := NewList(a, a); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a name twice: %v", err)
	}
	c := Info{Name: "c", Options: []Option{{Key: "gw", Flag: "gateway"}}}
	if _, err := NewList(a, c); err == nil || !strings.Contains(err.Error(), "--gateway") {
		t.Errorf("one flag for two keys: %v", err)
	}
}
