// The node's pages load this one module: it registers <moq-watch> and
// <moq-publish>, and exposes the modules for pages that script them.
import "@moq/watch/element";
import "@moq/publish/element";
