'use strict';
// A device app in the style of Microsoft's device-management tutorials
// (reboot and firmware update), on the official Azure IoT device SDK.
// It prints READY once it is connected and listening.
const { Client } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const cs = process.env.DEVICE_CONNECTION_STRING;
const stageMs = parseInt(process.env.STAGE_MS || '200', 10);
const renewal = parseInt(process.env.TOKEN_RENEWAL_SECONDS || '0', 10);
const caFile = process.env.HUBFLOW_CA_FILE;

function fail(msg, err) {
  console.error(msg + (err ? ': ' + (err.message || err) : ''));
  process.exit(1);
}

const client = Client.fromConnectionString(cs, Mqtt);
const options = {};
if (caFile) options.ca = require('fs').readFileSync(caFile, 'utf8');
if (renewal > 0) {
  options.tokenRenewal = { tokenValidTimeInSeconds: renewal, tokenRenewalMarginInSeconds: Math.max(1, renewal - 3) };
}
client.setOptions(options);

function report(twin, patch) {
  return new Promise((resolve, reject) =>
    twin.properties.reported.update(patch, (err) => (err ? reject(err) : resolve())));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

client.open(async (err) => {
  if (err) fail('open', err);
  client.getTwin(async (err, twin) => {
    if (err) fail('getTwin', err);

    client.onDeviceMethod('rebootDevice', async (request, response) => {
      response.send(200, { Response: 'Reboot started' }, (err) => { if (err) console.error('send', err.message); });
      await sleep(stageMs);
      await report(twin, { rebootTime: new Date().toISOString() }).catch((e) => console.error('report', e.message));
    });

    client.onDeviceMethod('firmwareUpdate', async (request, response) => {
      const uri = request.payload && request.payload.fwPackageUri;
      if (!uri) {
        response.send(400, { Response: 'fwPackageUri missing' }, () => {});
        return;
      }
      response.send(200, { Response: 'Firmware update started' }, () => {});
      try {
        await report(twin, { firmwareStatus: 'downloading', downloadComplete: null });
        await sleep(stageMs);
        await report(twin, { firmwareStatus: 'applying', downloadComplete: new Date().toISOString() });
        await sleep(stageMs);
        await report(twin, { firmwareStatus: 'completed', startedApplyingImage: new Date().toISOString(), lastFirmwareUpdate: new Date().toISOString() });
      } catch (e) {
        console.error('report', e.message);
      }
    });

    twin.on('properties.desired.maintenanceWindow', (delta) => {
      if (!delta || !delta.start) return;
      report(twin, { maintenanceWindow: { status: 'accepted', start: delta.start, duration: delta.duration } })
        .catch((e) => console.error('report', e.message));
    });

    await report(twin, { firmwareStatus: 'standBy', logTime: new Date().toISOString() }).catch((e) => fail('report standBy', e));
    console.log('READY');
  });
});

process.on('SIGTERM', () => client.close(() => process.exit(0)));
