'use strict';
// The service SDK always dials port 443 of HostName. This preload sends its
// requests for HUBFLOW_HUB_HOST to the emulator's address instead; nothing
// else in the request changes (the SAS token still names HostName).
const https = require('https');
const host = process.env.HUBFLOW_HUB_HOST;
const [addrHost, addrPort] = (process.env.HUBFLOW_HUB_ADDR || '').split(':');
const original = https.request;
https.request = function (options, ...rest) {
  if (options && typeof options === 'object' && (options.host === host || options.hostname === host)) {
    options = Object.assign({}, options, { host: addrHost, hostname: addrHost, port: Number(addrPort), servername: 'localhost' });
  }
  return original.call(this, options, ...rest);
};
