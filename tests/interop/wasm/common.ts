// Shared by the test plugins: the plugin configuration read through the
// SDK's get_buffer_bytes wrapper. (The SDK 0.1.8 RootContext.onConfigure
// passes the configuration size where the host expects the address to
// write the size to, so with an empty configuration and a root id it
// reads a stale buffer; every test plugin overrides onConfigure.)
import { BufferTypeValues, get_buffer_bytes } from "@solo-io/proxy-runtime/runtime";

export function readConfiguration(size: u32): string {
  if (size == 0) {
    return "";
  }
  return String.UTF8.decode(get_buffer_bytes(BufferTypeValues.PluginConfiguration, 0, size));
}
