module github.com/moqp2p/moqp2p/interop/gomoqt-lite03

go 1.26.0

require (
	github.com/okdaichi/gomoqt v0.12.2
	github.com/quic-go/quic-go v0.59.0
)

require (
	github.com/dunglas/httpsfv v1.1.0 // indirect
	github.com/okdaichi/webtransport-go v0.10.2-okdaichi.1 // indirect
	github.com/quic-go/qpack v0.6.0 // indirect
	golang.org/x/crypto v0.49.0 // indirect
	golang.org/x/net v0.52.0 // indirect
	golang.org/x/sys v0.42.0 // indirect
	golang.org/x/text v0.35.0 // indirect
)
