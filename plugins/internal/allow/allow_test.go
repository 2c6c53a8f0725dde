package allow

import "testing"

func TestSpecAndPick(t *testing.T) {
	entries := []Entry{
		{Targets: []string{"staging-*"}, Values: []string{`AKIA[A-Z2-7]{16}`, `noreply@example\.com`}},
		{Values: []string{`test_[a-z0-9]+`}},
	}
	spec, err := Spec("secrets,email", entries[0])
	if err != nil || spec != `secrets,email|allow:(?:AKIA[A-Z2-7]{16})|(?:noreply@example\.com)` {
		t.Fatalf("spec %q %v", spec, err)
	}
	if _, err := Spec("secrets", Entry{Values: []string{"("}}); err == nil {
		t.Fatal("a broken expression was accepted")
	}
	for target, want := range map[string]int{"staging-db": 0, "prod-db": 1, "": 1} {
		if got := Pick(entries, target); got != want {
			t.Errorf("Pick(%q) = %d, want %d", target, got, want)
		}
	}
	if Pick(entries[:1], "prod-db") != -1 {
		t.Error("an entry for staging applied to prod")
	}
}

func TestCompile(t *testing.T) {
	var specs []string
	compile := func(spec string) (int, bool) {
		specs = append(specs, spec)
		return len(specs), spec != "secrets|allow:(?:refused)"
	}
	got, err := Compile("secrets", []Entry{{Values: []string{"a"}}, {Values: []string{"b"}}}, compile)
	if err != nil || len(got) != 2 || got[1] != 2 || specs[1] != "secrets|allow:(?:b)" {
		t.Fatalf("%v %v %q", got, err, specs)
	}
	if _, err := Compile("secrets", []Entry{{Values: []string{"refused"}}}, compile); err == nil {
		t.Fatal("a pattern the host refused was accepted")
	}
}
