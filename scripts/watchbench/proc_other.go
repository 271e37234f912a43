//go:build !linux

package main

import "os/exec"

func setDeathSignal(*exec.Cmd) {}

func fileLimit() string { return "unknown" }
