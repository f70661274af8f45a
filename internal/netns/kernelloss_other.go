//go:build !linux

package netns

import "errors"

// SetKernelLoss makes the kernel drop forwarded packets: Linux only.
func (l *Link) SetKernelLoss(float64) error { return errors.New("network namespaces need Linux") }

// SetLoopbackLoss makes the kernel drop UDP on loopback: Linux only.
func (l *Link) SetLoopbackLoss(float64) error { return errors.New("network namespaces need Linux") }

// KernelDropped is how many packets the SetKernelLoss rule dropped.
func (l *Link) KernelDropped() (uint64, error) { return 0, nil }

// In runs f in the link's namespace ns: Linux only.
func (l *Link) In(string, func()) error { return errors.New("network namespaces need Linux") }
