// esbuild bundles imported stylesheets next to the script.
declare module "*.css";
