package motoserver_test

import (
	"testing"

	"github.com/ksse-go/ksse/internal/motoserver/mototest"
)

func TestMain(m *testing.M) { mototest.Main(m) }
