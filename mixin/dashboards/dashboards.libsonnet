{ grafanaDashboards:: {} }
