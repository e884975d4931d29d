package trust_test

import (
	"os"
	"testing"

	"github.com/bankedge/bankedge/internal/testcaddy"
)

func TestMain(m *testing.M) { os.Exit(testcaddy.Main(m)) }
