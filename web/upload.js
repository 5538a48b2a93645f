// lookalike web page, preparing a chosen file for upload: the original bytes as base64, or a JPEG
// re-encoding when the image is too big to send as it is. Plain browser JavaScript; needs common.js.
(function () {
  "use strict";

  var L = window.Lookalike;
  // The server's limit (limits.js, generated from lookalike/limits.py) on a request body.
  var MAX_BODY_BYTES = window.LOOKALIKE_LIMITS.maxBodyBytes;
  // Base64 grows data by 4/3, so images above ~4 MB or 4096 px are re-encoded before upload.
  var DOWNSCALE_BYTES = 4 * 1024 * 1024;
  var MAX_SIDE = 4096;
  var JPEG_QUALITY = 0.92;

  // Resolves to {base64, note}; extraBytes: the rest of the request (its JSON envelope).
  L.prepareUpload = function (blob, extraBytes) {
    return decode(blob).then(function (bitmap) {
      var side = bitmap ? Math.max(bitmap.width, bitmap.height) : 0;
      if (!bitmap || (blob.size <= DOWNSCALE_BYTES && side <= MAX_SIDE)) {
        if (bitmap && bitmap.close) bitmap.close();
        // Undecodable here (e.g. TIFF, or not an image at all): the server decides and explains.
        return readBase64(blob).then(function (b64) { return { base64: b64, note: "" }; });
      }
      return downscale(bitmap, Math.min(MAX_SIDE, side), extraBytes).then(function (result) {
        if (bitmap.close) bitmap.close();
        return result;
      });
    }).then(function (prepared) {
      if (prepared.base64.length + extraBytes > MAX_BODY_BYTES) throw new Error(L.tooLargeMessage());
      return prepared;
    });
  };

  function decode(blob) {
    if (!window.createImageBitmap) return Promise.resolve(null);
    return window.createImageBitmap(blob).catch(function () { return null; });
  }

  function downscale(bitmap, targetSide, extraBytes) {
    var scale = targetSide / Math.max(bitmap.width, bitmap.height);
    var w = Math.max(1, Math.round(bitmap.width * scale));
    var h = Math.max(1, Math.round(bitmap.height * scale));
    var canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    var ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";  // JPEG has no alpha: flatten onto white as the server does
    ctx.fillRect(0, 0, w, h);
    ctx.drawImage(bitmap, 0, 0, w, h);
    return new Promise(function (resolve) {
      canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY);
    }).then(function (jpeg) {
      if (!jpeg) throw new Error("This browser could not re-encode the image; try a smaller file.");
      return readBase64(jpeg).then(function (b64) {
        if (b64.length + extraBytes > MAX_BODY_BYTES && targetSide > 512) {
          return downscale(bitmap, Math.round(targetSide * 0.75), extraBytes);
        }
        return { base64: b64, note: "sent as " + w + "×" + h + " JPEG (" + L.formatBytes(jpeg.size) + ")" };
      });
    });
  }

  function readBase64(blob) {
    return new Promise(function (resolve, reject) {
      var reader = new FileReader();
      reader.onload = function () {
        var url = String(reader.result);
        resolve(url.slice(url.indexOf(",") + 1));
      };
      reader.onerror = function () { reject(new Error("Could not read the file.")); };
      reader.readAsDataURL(blob);
    });
  }
})();
