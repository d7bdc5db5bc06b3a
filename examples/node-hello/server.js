// A Node.js service with no dependencies: answers GET / on $PORT.
const http = require("http");

const port = Number(process.env.PORT || 8000);
http
  .createServer((req, res) => {
    const body = JSON.stringify({
      service: process.env.BERTH_SERVICE,
      version: process.env.BERTH_VERSION,
      runtime: process.version,
      uid: process.getuid(),
      path: req.url,
    });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(body);
  })
  .listen(port, "0.0.0.0", () => console.log(`listening on ${port}`));
