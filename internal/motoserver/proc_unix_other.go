//go:build unix && !linux

package motoserver

import "syscall"

func setPdeathsig(*syscall.SysProcAttr) {}
