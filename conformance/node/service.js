'use strict';
// A back-end app in the style of Microsoft's device-management tutorials, on
// the official Azure IoT service SDK: it invokes rebootDevice and
// firmwareUpdate, polls the twin until each finishes, writes a maintenance
// window to desired properties, waits for the device to accept it, and runs
// a twin query. It prints one JSON line with what it saw and exits non-zero
// on the first failure.
const iothub = require('azure-iothub');

const cs = process.env.SERVICE_CONNECTION_STRING;
const deviceId = process.env.DEVICE_ID;
const client = iothub.Client.fromConnectionString(cs);
const registry = iothub.Registry.fromConnectionString(cs);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const seen = { stages: [] };

async function pollTwin(what, pred, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const { responseBody: twin } = await registry.getTwin(deviceId);
    if (pred(twin)) return twin;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await sleep(100);
  }
}

async function main() {
  const reboot = await client.invokeDeviceMethod(deviceId, { methodName: 'rebootDevice', payload: null, responseTimeoutInSeconds: 30 });
  seen.reboot = reboot.result;
  if (reboot.result.status !== 200) throw new Error('rebootDevice answered ' + reboot.result.status);
  const t1 = await pollTwin('rebootTime', (t) => t.properties.reported.rebootTime !== undefined);
  seen.rebootTime = t1.properties.reported.rebootTime;

  const fw = await client.invokeDeviceMethod(deviceId, {
    methodName: 'firmwareUpdate',
    payload: { fwPackageUri: 'https://secureurl/firmware/2.0.0.bin' },
    responseTimeoutInSeconds: 30,
  });
  seen.firmware = fw.result;
  await pollTwin('firmwareStatus completed', (t) => {
    const s = t.properties.reported.firmwareStatus;
    if (seen.stages[seen.stages.length - 1] !== s) seen.stages.push(s);
    return s === 'completed';
  });

  const { responseBody: twin } = await registry.getTwin(deviceId);
  await registry.updateTwin(deviceId, { properties: { desired: { maintenanceWindow: { start: '01:00', duration: '3h' } } } }, twin.etag);
  const t3 = await pollTwin('maintenanceWindow accepted', (t) =>
    t.properties.reported.maintenanceWindow && t.properties.reported.maintenanceWindow.status === 'accepted');
  seen.maintenanceWindow = t3.properties.reported.maintenanceWindow;

  const query = registry.createQuery("SELECT * FROM devices WHERE properties.reported.firmwareStatus = 'completed'", 100);
  const page = await query.nextAsTwin();
  seen.query = page.result.map((t) => t.deviceId);
  if (!seen.query.includes(deviceId)) throw new Error('query did not return ' + deviceId);

  const created = await registry.create({ deviceId: deviceId + '-new' });
  seen.createdKeys = Boolean(created.responseBody.authentication.symmetricKey.primaryKey);
  await registry.delete(deviceId + '-new');

  console.log(JSON.stringify(seen));
}

main().then(() => process.exit(0), (err) => {
  console.error('FAILED: ' + (err.message || err) + (err.responseBody ? ' ' + JSON.stringify(err.responseBody) : ''));
  console.log(JSON.stringify(seen));
  process.exit(1);
});
