package psd2

import (
	"testing"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
)

// BenchmarkMeterAccepted is what the metrics add to an accepted request:
// the pooled request meter, the verify time, the TPP's counters and the
// cache counter. It must not allocate.
func BenchmarkMeterAccepted(b *testing.B) {
	v := newCertVerifier(trustRoots{}, qcstatements.QcTypeWeb, 1, certStatus{}, nil)
	tpp := &TPP{OrgID: "PSDGR-BOG-BENCH1", meter: v.tppMeter("PSDGR-BOG-BENCH1", []string{"PSP_PI"})}
	vars := map[string]any{}
	b.ReportAllocs()
	for b.Loop() {
		m := startMeter(vars)
		v.meterLookup(true)
		markChecked(vars, tpp)
		markChecked(vars, nil)
		finishMeter(vars, m)
	}
}

func TestMeterAcceptedAllocatesNothing(t *testing.T) {
	v := newCertVerifier(trustRoots{}, qcstatements.QcTypeWeb, 1, certStatus{}, nil)
	tpp := &TPP{OrgID: "PSDGR-BOG-ALLOC1", meter: v.tppMeter("PSDGR-BOG-ALLOC1", []string{"PSP_PI"})}
	vars := map[string]any{}
	if n := testing.AllocsPerRun(200, func() {
		m := startMeter(vars)
		v.meterLookup(true)
		markChecked(vars, tpp)
		finishMeter(vars, m)
	}); n != 0 || tpp.meter == nil {
		t.Fatalf("metrics allocate %v times per accepted request", n)
	}
}
