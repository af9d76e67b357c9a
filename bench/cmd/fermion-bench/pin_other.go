//go:build !linux

package main

import "errors"

func pinProcess(int) error { return errors.New("-split-cores needs Linux") }
