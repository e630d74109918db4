//go:build unix && !linux

package kinesalite

import "syscall"

func setPdeathsig(*syscall.SysProcAttr) {}
