// Toasts show event text as text, never as HTML (a tenant may be named "<img onerror=…>").
// Loaded right after toastr and before any page script, the seed document's included.
toastr.options.escapeHtml = true;
