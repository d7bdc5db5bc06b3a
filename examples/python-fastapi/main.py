"""A FastAPI service: answers GET / on $PORT, and says whether the extra is installed."""
import importlib.util
import os

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def root():
    return {
        "service": os.environ.get("BERTH_SERVICE"),
        "version": os.environ.get("BERTH_VERSION"),
        "framework": "fastapi",
        "orjson": importlib.util.find_spec("orjson") is not None,
        "uid": os.getuid(),
    }


if __name__ == "__main__":
    uvicorn.run(app, host="0.0.0.0", port=int(os.environ.get("PORT", "8000")))
