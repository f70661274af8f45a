module github.com/moqp2p/moqp2p/interop/gomoqt-lite04

go 1.26.4

require (
	github.com/quic-go/quic-go v0.60.0
	github.com/qumo-dev/gomoqt v0.16.1
)

require (
	github.com/dunglas/httpsfv v1.1.0 // indirect
	github.com/okdaichi/webtransport-go v0.11.0-okdaichi.1 // indirect
	github.com/quic-go/qpack v0.6.0 // indirect
	golang.org/x/crypto v0.51.0 // indirect
	golang.org/x/net v0.55.0 // indirect
	golang.org/x/sys v0.45.0 // indirect
	golang.org/x/text v0.37.0 // indirect
)
