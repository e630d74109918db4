package emulator_test

import (
	"testing"

	"github.com/ksse-go/ksse/internal/emulator/emulatortest"
)

func TestMain(m *testing.M) { emulatortest.Main(m) }
