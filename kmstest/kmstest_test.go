package kmstest_test

import (
	"github.com/ksse-go/ksse/kmsiface"
	"github.com/ksse-go/ksse/kmstest"
)

var _ kmsiface.Client = (*kmstest.KMS)(nil)
