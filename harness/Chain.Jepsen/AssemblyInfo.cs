namespace Chain.Jepsen;
