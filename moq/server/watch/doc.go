// Package watch serves the node's media pages: /watch plays a hang
// broadcast with @moq/watch (<moq-watch>), /publish sends the browser's
// camera with @moq/publish (<moq-publish>), both as a moq-lite client of
// the node serving the page (WebTransport on the same port; the
// development certificate's hash comes from /certificate.sha256).
//
// The JavaScript is @moq/watch 0.4.6 and @moq/publish 0.2.17 (and their
// dependencies, pinned by web/package-lock.json) bundled into one module,
// assets/moq.js, checked in so a node serves the pages without npm:
// (cd moq/server/watch/web && npm ci && npm run build) rebuilds it.
package watch
