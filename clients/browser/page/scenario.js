// Runs in the page: connects to a hub on another origin with the official client and reports
// what happened. Every wait is bounded so a broken server fails the scenario instead of hanging.
"use strict";

window.runScenario = async function runScenario(hubUrl, transportName) {
    const WAIT_MS = 15000;
    const within = (promise, what) => new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("timed out waiting for " + what)), WAIT_MS);
        promise.then((value) => { clearTimeout(timer); resolve(value); },
            (err) => { clearTimeout(timer); reject(err); });
    });

    const connection = new signalR.HubConnectionBuilder()
        .withUrl(hubUrl, {
            transport: signalR.HttpTransportType[transportName],
            withCredentials: true,
        })
        .configureLogging(signalR.LogLevel.Warning)
        .build();

    let resolveMessage;
    const message = new Promise((resolve) => { resolveMessage = resolve; });
    connection.on("Message", (msg) => resolveMessage(msg));
    let resolveClosed;
    const closed = new Promise((resolve) => { resolveClosed = resolve; });
    connection.onclose((error) => resolveClosed(error ? String(error) : null));

    const result = { steps: [] };
    try {
        await within(connection.start(), "start()");
        result.steps.push("started");
        result.connectionId = connection.connectionId;
        result.echo = await within(connection.invoke("Echo", "héllo from the browser ☃"), "Echo");
        await within(connection.invoke("InvokeWithString", "pushed to the browser"), "InvokeWithString");
        result.message = await within(message, "Message");
        result.transport = await within(connection.invoke("GetActiveTransportName"), "GetActiveTransportName");
        result.cookie = await within(connection.invoke("GetCookie", "testCookie"), "GetCookie");
        result.serverConnectionId = await within(connection.invoke("GetCallerConnectionId"), "GetCallerConnectionId");
        result.userAgentHeader = await within(connection.invoke("GetHeader", "X-SignalR-User-Agent"), "GetHeader");
        await within(connection.stop(), "stop()");
        result.closeError = await within(closed, "onclose");
        result.steps.push("stopped");
    } catch (err) {
        result.error = String(err && err.stack ? err.stack : err);
        try {
            await connection.stop();
        } catch (ignored) {
            // The scenario already failed; report that error, not the stop's.
        }
    }
    return result;
};
