package watch

import (
	"embed"
	"io/fs"
	"net/http"
	"net/url"

	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/moq/server"
)

//go:embed assets
var assets embed.FS

// Handler serves the pages under "/": an index that points to the others,
// /watch?name=NAME, /publish?name=NAME and their scripts. Set it as server.Server.Handler. The pages show the
// node's statistics from /stats, which NodeHandler adds.
func Handler() http.Handler {
	sub, _ := fs.Sub(assets, "assets") // the directory is embedded: cannot fail
	files := http.FileServerFS(sub)
	mux := http.NewServeMux()
	page := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/" + name
			// The browser checks for updates each load, so a node upgrade
			// never plays with a stale bundle.
			w.Header().Set("Cache-Control", "no-cache")
			files.ServeHTTP(w, r2)
		}
	}
	// Not index.html: the file server redirects that name to "./".
	mux.HandleFunc("GET /{$}", page("home.html"))
	mux.HandleFunc("GET /watch", page("watch.html"))
	mux.HandleFunc("GET /publish", page("publish.html"))
	for _, f := range []string{"moq.js", "report.js", "node.js"} {
		mux.HandleFunc("GET /"+f, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-cache")
			files.ServeHTTP(w, r)
		})
	}
	return mux
}

// NodeHandler is Handler with node m's live statistics at /stats, which
// the pages show next to the player (with Handler alone they say "stats
// unavailable"): server.AnonymousStatsHandler, the counts and rates
// without the node's peer IDs or its clients' addresses, since anyone who
// can load the pages can read them.
func NodeHandler(m *moq.Moq) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /stats", server.AnonymousStatsHandler(m))
	mux.Handle("/", Handler())
	return mux
}

// WatchURL is the page playing broadcast name, on the node whose plain
// HTTP listener is at base (http://host:port).
func WatchURL(base, name string) string {
	return base + "/watch?name=" + url.QueryEscape(name)
}

// PublishURL is the page publishing the camera as broadcast name.
func PublishURL(base, name string) string {
	return base + "/publish?name=" + url.QueryEscape(name)
}
