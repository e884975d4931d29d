package console

import "testing"

func TestSafeFilename(t *testing.T) {
	for in, want := range map[string]string{
		"BANK_XYZ.p12":            "BANK_XYZ.p12",
		"a\"b\r\nContent-Type: x": "a_b__Content-Type__x",
		"../../etc/passwd":        ".._.._etc_passwd",
		"Société Générale":        "Soci_t__G_n_rale",
		"":                        "fallback",
	} {
		if got := SafeFilename(in, "fallback"); got != want {
			t.Errorf("SafeFilename(%q) = %q, want %q", in, got, want)
		}
	}
}
